//! Which tasks of a graph may run: a stage's tasks become ready when every
//! stage it reads has finished. Shared by the local scheduler and the
//! cluster driver.

use std::collections::VecDeque;

use crate::graph::TaskGraph;

/// A task: (stage, partition).
pub type TaskId = (usize, usize);

pub struct ReadyTasks {
    ready: VecDeque<TaskId>,
    /// Tasks of each stage not yet finished.
    remaining: Vec<usize>,
    /// Input stages of each stage not yet finished.
    waiting_on: Vec<usize>,
    /// The stages that read each stage.
    consumers: Vec<Vec<usize>>,
    partitions: Vec<usize>,
    stages_done: usize,
}

impl ReadyTasks {
    /// The graph's tasks, those of the stages that read no other ready.
    pub fn new(graph: &TaskGraph) -> Self {
        let n = graph.stages.len();
        let mut consumers: Vec<Vec<usize>> = vec![vec![]; n];
        let mut waiting_on = vec![0; n];
        for s in &graph.stages {
            for input in s.inputs() {
                consumers[input].push(s.id);
                waiting_on[s.id] += 1;
            }
        }
        let partitions: Vec<usize> = graph.stages.iter().map(|s| s.partitions).collect();
        let mut tasks = ReadyTasks {
            ready: VecDeque::new(),
            remaining: partitions.clone(),
            waiting_on,
            consumers,
            partitions,
            stages_done: 0,
        };
        // Making a stage ready may already release its consumers (a stage
        // without partitions is done at once), so pick the sources first.
        let sources: Vec<usize> = (0..n).filter(|&s| tasks.waiting_on[s] == 0).collect();
        for s in sources {
            tasks.make_ready(s);
        }
        tasks
    }

    /// The next task to run.
    pub fn pop(&mut self) -> Option<TaskId> {
        self.ready.pop_front()
    }

    /// A task that has to run again (its worker was lost) goes first.
    pub fn retry(&mut self, task: TaskId) {
        self.ready.push_front(task);
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn all_done(&self) -> bool {
        self.stages_done == self.partitions.len()
    }

    pub fn total(&self) -> usize {
        self.partitions.iter().sum()
    }

    /// Records a finished task of `stage`; the stages that were waiting
    /// only on it become ready.
    pub fn finished(&mut self, stage: usize) {
        self.remaining[stage] -= 1;
        if self.remaining[stage] == 0 {
            self.stage_finished(stage);
        }
    }

    fn make_ready(&mut self, s: usize) {
        if self.partitions[s] == 0 {
            self.stage_finished(s);
        } else {
            // Later stages go to the front: finishing consumers first frees memory.
            for p in (0..self.partitions[s]).rev() {
                self.ready.push_front((s, p));
            }
        }
    }

    fn stage_finished(&mut self, s: usize) {
        self.stages_done += 1;
        for k in 0..self.consumers[s].len() {
            let c = self.consumers[s][k];
            self.waiting_on[c] -= 1;
            if self.waiting_on[c] == 0 {
                self.make_ready(c);
            }
        }
    }
}
