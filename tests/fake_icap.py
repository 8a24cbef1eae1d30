"""A fake ICAP server on 127.0.0.1 for answers a real c-icap cannot be made to give.

It answers OPTIONS (Methods RESPMOD, Preview PREVIEW, Allow 204), reads each
RESPMOD completely (encapsulated headers, preview, "100 Continue", the rest of
the chunked body) and then answers as `mode` says:

    "clean"       204 (a well-behaved server)
    "violations"  200 with only X-Violations-Found (the ICAP draft's form) and a 403 page
    "folded"      200 with X-Infection-Found folded over three lines, odd case and blanks
    "virus_id"    200 with X-Virus-ID and an unchanged HTTP 200 content
    "blocked"     200 with a replaced HTTP 403 page and no infection header
    "hostile"     200 with X-Virus-ID of 8-bit bytes, controls, printf directives, 4 KiB long
    "error500"    ICAP 500 Server Error
    "garbage"     bytes that are not ICAP, then close
    "stall"       reads the request, never answers
    "close"       reads the request, closes without a byte
    "preview_virus"  answers the preview itself with a virus (never asks for the rest)
    "drop_after"  answers 204, then closes the connection (a server restart)
    "no_preview"  its OPTIONS offers no Preview: the whole file comes without one
    "stop_reading" takes the preview, says 100 Continue, then reads nothing more
                  (an upload that stalls; a small receive window makes it show at once)
    "slow_drain"  takes the preview, says 100 Continue, then reads the rest at
                  TRICKLE_BYTES per TRICKLE_INTERVAL for ever, never answering (an
                  upload never silent for long, never finished)
    "drip_answer" reads the request, then sends an answer one byte every
                  DRIP_INTERVAL s, never finished
    "reqmod_only" its OPTIONS offers REQMOD only (plugin_init must refuse)
    "options_404" OPTIONS answered "404 Service not found"
    "options_garbage" OPTIONS answered with bytes that are not ICAP

    with FakeIcap("violations") as fake:
        fake.plugin_options(ScanTimeout=5)
        fake.respmods, fake.options, fake.connections
        fake.bodies      # per RESPMOD: (preview header or None, ieof seen, body bytes received)
"""
import socket
import time

from fake_server import FakeServer

PREVIEW = 1024
BLOCK_PAGE = b"<html><body>blocked</body></html>"


def _chunked(data: bytes) -> bytes:
    return (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n") if data else b"0\r\n\r\n"


def _http_page(status: str, body: bytes) -> tuple[bytes, bytes]:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head, body


class FakeIcap(FakeServer):
    # 8 KiB per 0.15 s (53 KiB/s), steadily: the sender sees progress well within
    # ScanTimeout=5, yet 3 MiB take a minute.
    TRICKLE_BYTES = 8 * 1024
    TRICKLE_INTERVAL = 0.15
    DRIP_INTERVAL = 1.0

    def __init__(self, mode: str = "clean", host: str = "127.0.0.1"):
        super().__init__()
        self.mode = mode
        self.respmods = 0
        self.options = 0
        self.bodies = []
        self.host = host
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen(sock, (host, 0), small_window=mode == "stop_reading")
        self.port = self._sock.getsockname()[1]

    def plugin_options(self, **extra) -> dict:
        opts = {"Server": self.host, "Port": str(self.port), "Service": "avscan",
                "StartupTimeout": "5"}
        opts.update({k: str(v) for k, v in extra.items()})
        return opts

    # --- reading ---

    @staticmethod
    def _read_until(conn, buf, delim: bytes) -> bytes:
        while delim not in buf[0]:
            got = conn.recv(65536)
            if not got:
                raise ConnectionError("client went away")
            buf[0] += got
        out, buf[0] = buf[0].split(delim, 1)
        return out

    @staticmethod
    def _read_exact(conn, buf, n: int) -> bytes:
        while len(buf[0]) < n:
            got = conn.recv(65536)
            if not got:
                raise ConnectionError("client went away")
            buf[0] += got
        out, buf[0] = buf[0][:n], buf[0][n:]
        return out

    def _read_chunks(self, conn, buf) -> tuple[int, bool]:
        """Reads chunks up to the zero one: (bytes, whether the last chunk said ieof)."""
        total = 0
        while True:
            line = self._read_until(conn, buf, b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                self._read_until(conn, buf, b"\r\n")  # the empty trailer line
                return total, b"ieof" in line
            self._read_exact(conn, buf, size + 2)
            total += size

    # --- answering ---

    def _options_answer(self) -> bytes:
        if self.mode == "options_404":
            return b"ICAP/1.0 404 Service not found\r\nEncapsulated: null-body=0\r\n\r\n"
        if self.mode == "options_garbage":
            return b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
        methods = "REQMOD" if self.mode == "reqmod_only" else "RESPMOD, REQMOD"
        preview = "" if self.mode == "no_preview" else f"Preview: {PREVIEW}\r\n"
        return (f"ICAP/1.0 200 OK\r\nMethods: {methods}\r\nService: fake ICAP for tests\r\n"
                f"ISTag: \"fake-1\"\r\n{preview}Allow: 204\r\nEncapsulated: null-body=0\r\n\r\n"
                ).encode()

    @staticmethod
    def _modified(extra_headers: str, status: str, body: bytes) -> bytes:
        head, body = _http_page(status, body)
        return (f"ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\n{extra_headers}"
                f"Encapsulated: res-hdr=0, res-body={len(head)}\r\n\r\n").encode() + head + \
            _chunked(body)

    def _verdict(self) -> bytes:
        mode = self.mode
        if mode == "violations":
            return self._modified("X-Violations-Found: 1\r\n\teicar.com\r\n\tFake.Violation.Name\r\n"
                                  "\t42\r\n\t2\r\n", "403 Forbidden", BLOCK_PAGE)
        if mode == "folded":
            return self._modified("x-infection-found:   Type=0;\r\n   Resolution=2;\r\n\t"
                                  "Threat=Fake.Folded.Name;\r\n", "403 Forbidden", BLOCK_PAGE)
        if mode == "virus_id":
            return self._modified("X-Virus-ID: Fake.VirusID.Name\r\n", "200 OK", b"same bytes")
        if mode == "blocked":
            return self._modified("", "403 Forbidden", BLOCK_PAGE)
        if mode == "hostile":
            name = "Caf\u00e9\x01%s%n%x" + "V" * 4096
            return self._modified("X-Virus-ID: ", "403 Forbidden", BLOCK_PAGE).replace(
                b"X-Virus-ID: ", b"X-Virus-ID: " + name.encode("utf-8") + b"\r\n", 1)
        if mode == "error500":
            return b"ICAP/1.0 500 Server Error\r\nEncapsulated: null-body=0\r\n\r\n"
        return b"ICAP/1.0 204 No Content\r\nISTag: \"fake-1\"\r\nEncapsulated: null-body=0\r\n\r\n"

    def _client(self, conn):
        buf = [b""]
        try:
            while not self._stop.is_set():
                head = self._read_until(conn, buf, b"\r\n\r\n").decode("latin-1")
                method = head.split(" ", 1)[0]
                if method == "OPTIONS":
                    self.options += 1
                    conn.sendall(self._options_answer())
                    if self.mode == "options_garbage":
                        return
                    continue
                self._respmod(conn, buf, head)
                if self.mode in ("garbage", "close", "drop_after"):
                    return
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _respmod(self, conn, buf, head: str):
        self.respmods += 1
        headers = {}
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        encapsulated = dict(part.strip().split("=") for part in headers["encapsulated"].split(","))
        self._read_exact(conn, buf, int(encapsulated["res-body"]))
        preview = headers.get("preview")
        total, ieof = self._read_chunks(conn, buf)
        if self.mode == "preview_virus" and preview is not None:
            self.bodies.append((preview, ieof, total))
            conn.sendall(self._modified("X-Virus-ID: Fake.In.Preview\r\n", "403 Forbidden",
                                        BLOCK_PAGE))
            return
        if preview is not None and not ieof:
            conn.sendall(b"ICAP/1.0 100 Continue\r\n\r\n")
            if self.mode == "stop_reading":
                self.bodies.append((preview, ieof, total))
                while not self._stop.is_set():
                    time.sleep(0.1)
                return
            if self.mode == "slow_drain":
                self.bodies.append((preview, ieof, total))
                while not self._stop.wait(self.TRICKLE_INTERVAL):
                    if not conn.recv(self.TRICKLE_BYTES):
                        return
                return
            more, _ = self._read_chunks(conn, buf)
            total += more
        self.bodies.append((preview, ieof, total))
        if self.mode == "stall":
            while not self._stop.is_set():
                time.sleep(0.1)
            return
        if self.mode == "close":
            return
        if self.mode == "drip_answer":
            answer = b"ICAP/1.0 204 No Content\r\nISTag: \"fake-1\"\r\nX-Pad: " + b"x" * 100000
            for byte in answer:
                if self._stop.wait(self.DRIP_INTERVAL):
                    return
                conn.sendall(bytes([byte]))
            return
        if self.mode == "garbage":
            conn.sendall(b"\x00\xffHELLO %s%n\r\n\r\n")
            return
        conn.sendall(self._verdict())
