"""An HTTP server for tests/remote.rs that cuts every body off halfway.

    python3 cut_body_server.py PORT DIR

Serves the files of DIR on 127.0.0.1:PORT. HEAD answers as a good server
would: 200 with Content-Length, ETag, Last-Modified and Accept-Ranges: bytes
(404 for a file that is not there). GET (with a Range, 206 and its
Content-Range; without, 200) sends the right headers, Content-Length
included, then only the first half of the body, and closes the connection:
the reader sees the body end early, as when a connection drops mid-transfer.
Other methods (PROPFIND, ...) get 501. Every request is logged to stderr.
"""

import email.utils
import os
import re
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = "."


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def file(self):
        name = self.path.split("?", 1)[0].lstrip("/")
        path = os.path.join(ROOT, name)
        if not name or ".." in name.split("/") or not os.path.isfile(path):
            return None
        return path

    def file_headers(self, path: str) -> int:
        st = os.stat(path)
        self.send_header("ETag", f'"{st.st_ino:x}-{st.st_size:x}-{int(st.st_mtime):x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        return st.st_size

    def not_found(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        path = self.file()
        if path is None:
            return self.not_found()
        self.send_response(200)
        size = self.file_headers(path)
        self.send_header("Content-Length", str(size))
        self.end_headers()

    def do_GET(self) -> None:
        path = self.file()
        if path is None:
            return self.not_found()
        size = os.path.getsize(path)
        start, end = 0, size - 1
        status = 200
        wanted = self.headers.get("Range")
        if wanted:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", wanted)
            if not m or (not m.group(1) and not m.group(2)):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if m.group(1):
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
            else:  # the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = end - start + 1
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(length)
        self.send_response(status)
        self.file_headers(path)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        # half the body, then the connection ends
        self.wfile.write(body[: length // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.log_message("cut %s %s after %d of %d bytes", self.path, wanted or "", length // 2, length)


def main() -> None:
    global ROOT
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    port, ROOT = int(sys.argv[1]), sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"cut_body_server.py: serving {ROOT} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
