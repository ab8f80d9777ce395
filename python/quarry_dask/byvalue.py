"""Sending this package's code to the Dask workers, which do not have it.

cloudpickle can send a module's functions and classes by value
(`register_pickle_by_value`), but Dask pickles with plain pickle first and
keeps the result when it works — and on the driver, where the package is
importable, plain pickle works: it sends a reference, which a worker
cannot import. So what the workers run goes in wrappers whose plain pickle
is cloudpickle's by-value bytes: unpickled on a worker (or the scheduler),
a wrapper is the wrapped function or plugin itself.
"""

import pickle

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # the graph can be built and tested without dask
    WorkerPlugin = object


def register():
    """Makes cloudpickle send this package by value (once per process)."""
    import cloudpickle

    import quarry_dask

    cloudpickle.register_pickle_by_value(quarry_dask)


def _by_value(obj):
    import cloudpickle

    register()
    return cloudpickle.dumps(obj)


class Function:
    """A function of this package, sent by value; called like it."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__
        self._bytes = None

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        if self._bytes is None:
            self._bytes = _by_value(self.fn)
        return (pickle.loads, (self._bytes,))


class Plugin(WorkerPlugin):
    """A worker plugin of this package, sent by value."""

    def __init__(self, plugin):
        self.plugin = plugin
        # (what Client.register_plugin reads of the plugin it is given)
        self.idempotent = getattr(plugin, "idempotent", False)

    def __reduce__(self):
        return (pickle.loads, (_by_value(self.plugin),))
