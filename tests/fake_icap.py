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

    Answers that must never come out as clean (each was OK before the fix):
    "violations_abc"  204 with "X-Violations-Found: abc" (a count that is not a number)
    "violations_neg"  200, the content echoed whole, with "X-Violations-Found: -1"
    "infected_204"    204 "no modification" with an X-Infection-Found header
    "bad_http"        200 whose encapsulated HTTP head is not HTTP
    "partial"         200 with the HTTP 200 head and only the first half of the content
                      (c-icap's virus_scan with SendPercentData blocking an infected file)
    "echo"            200 with the content echoed whole (a clean answer without 204)
    "early_pass"      after 100 Continue, at once a 200 with the HTTP 200 head and the
                      preview's bytes, before the rest of the file (c-icap's
                      SendPercentData when its answer overtakes the upload); then it
                      waits for the rest that the plugin no longer sends

    Answers that try to desynchronise a kept connection; the verdict is by content
    (EICAR in the file: a virus page, else 204), so a verdict that lands on the
    wrong file shows:
    "trailers"        the virus page's body followed by TRAILERS trailer lines: 64 of
                      padding, then two that read as a whole "204" answer to whoever
                      stops after 64
    "endless_trailers" the virus page's body followed by trailer lines without end
    "smuggle"         each answer followed by a second, unasked-for one (the opposite verdict)

    with FakeIcap("violations") as fake:
        fake.plugin_options(ScanTimeout=5)
        fake.respmods, fake.options, fake.connections
        fake.bodies      # per RESPMOD: (preview header or None, ieof seen, body bytes received)
"""

import socket
import time

from avkit.facts import EICAR
from fake_server import FakeServer

PREVIEW = 1024
TRAILERS = 66  # more than the plugin reads (64): 64 padding lines, then a "204" head
BY_CONTENT = ("trailers", "endless_trailers", "smuggle")
KEEPS_CONTENT = BY_CONTENT + ("violations_neg", "bad_http", "partial", "echo", "early_pass")
BLOCK_PAGE = b"<html><body>blocked</body></html>"


def _chunked(data: bytes) -> bytes:
    return (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n") if data else b"0\r\n\r\n"


def _http_page(status: str, body: bytes) -> tuple[bytes, bytes]:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
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
        self.content = b""  # the last RESPMOD's body, for the modes that answer by it
        self.host = host
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen(sock, (host, 0), small_window=mode == "stop_reading")
        self.port = self._sock.getsockname()[1]

    def plugin_options(self, **extra) -> dict:
        opts = {
            "Server": self.host,
            "Port": str(self.port),
            "Service": "avscan",
            "StartupTimeout": "5",
        }
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

    def _read_chunks(self, conn, buf, keep: bool = False) -> tuple[int, bool]:
        """Reads chunks up to the zero one: (bytes, whether the last chunk said ieof);
        with `keep`, adds the data to self.content."""
        total = 0
        while True:
            line = self._read_until(conn, buf, b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                self._read_until(conn, buf, b"\r\n")  # the empty trailer line
                return total, b"ieof" in line
            data = self._read_exact(conn, buf, size + 2)
            if keep:
                self.content += data[:-2]
            total += size

    # --- answering ---

    def _options_answer(self) -> bytes:
        if self.mode == "options_404":
            return b"ICAP/1.0 404 Service not found\r\nEncapsulated: null-body=0\r\n\r\n"
        if self.mode == "options_garbage":
            return b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
        methods = "REQMOD" if self.mode == "reqmod_only" else "RESPMOD, REQMOD"
        preview = "" if self.mode == "no_preview" else f"Preview: {PREVIEW}\r\n"
        return (
            f"ICAP/1.0 200 OK\r\nMethods: {methods}\r\nService: fake ICAP for tests\r\n"
            f'ISTag: "fake-1"\r\n{preview}Allow: 204\r\nEncapsulated: null-body=0\r\n\r\n'
        ).encode()

    @staticmethod
    def _modified(extra_headers: str, status: str, body: bytes) -> bytes:
        head, body = _http_page(status, body)
        return (
            (
                f'ICAP/1.0 200 OK\r\nISTag: "fake-1"\r\n{extra_headers}'
                f"Encapsulated: res-hdr=0, res-body={len(head)}\r\n\r\n"
            ).encode()
            + head
            + _chunked(body)
        )

    def _echo(self, extra_headers: str = "", content: bytes | None = None) -> bytes:
        """200 with the HTTP 200 head and `content` (the received one by default)."""
        content = self.content if content is None else content
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(self.content)}\r\n\r\n"
        ).encode()
        return (
            (
                f'ICAP/1.0 200 OK\r\nISTag: "fake-1"\r\n{extra_headers}'
                f"Encapsulated: res-hdr=0, res-body={len(head)}\r\n\r\n"
            ).encode()
            + head
            + _chunked(content)
        )

    def _pass_early(self, conn, buf):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
        conn.sendall(
            (
                f'ICAP/1.0 200 OK\r\nISTag: "fake-1"\r\n'
                f"Encapsulated: res-hdr=0, res-body={len(head)}\r\n\r\n"
            ).encode()
            + head
            + f"{len(self.content):x}\r\n".encode()
            + self.content
            + b"\r\n"
        )
        more, _ = self._read_chunks(conn, buf)  # the plugin stops sending: until it closes
        self.bodies.append(("early", False, len(self.content) + more))

    def _by_content(self, conn):
        """The verdict on this file's own content, framed as the mode says."""
        clean = b'ICAP/1.0 204 No Content\r\nISTag: "fake-1"\r\nEncapsulated: null-body=0\r\n\r\n'
        # smuggle: the second answer in the same write, so it is there when the first is
        # read (one sent later may come after the next request, then it reads as its answer:
        # a server can always lie about a file, and no client can tell).
        if EICAR not in self.content:
            smuggled = self._modified(
                "X-Virus-ID: Smuggled.Answer\r\n", "403 Forbidden", BLOCK_PAGE
            )
            conn.sendall(clean + smuggled if self.mode == "smuggle" else clean)
            return
        virus = self._modified("X-Virus-ID: Fake.By.Content\r\n", "403 Forbidden", BLOCK_PAGE)
        if self.mode == "smuggle":
            conn.sendall(virus + clean)
            return
        assert virus.endswith(b"0\r\n\r\n")
        conn.sendall(virus[:-2])  # the body's last chunk, its trailer to follow
        if self.mode == "trailers":
            pads = b"".join(f"X-Pad: {i}\r\n".encode() for i in range(TRAILERS - 2))
            # The last trailer lines and the empty one read as a whole "204" answer.
            conn.sendall(pads + b'ICAP/1.0 204 No Content\r\nISTag: "fake-1"\r\n\r\n')
            return
        deadline = time.monotonic() + 30  # endless_trailers: until the client goes away
        while not self._stop.is_set() and time.monotonic() < deadline:
            conn.sendall(b"X-Pad: endless\r\n" * 64)
            time.sleep(0.01)

    def _verdict(self) -> bytes:
        mode = self.mode
        if mode == "violations_abc":
            return (
                b'ICAP/1.0 204 No Content\r\nISTag: "fake-1"\r\nX-Violations-Found: abc\r\n'
                b"Encapsulated: null-body=0\r\n\r\n"
            )
        if mode == "violations_neg":
            return self._echo("X-Violations-Found: -1\r\n")
        if mode == "infected_204":
            return (
                b'ICAP/1.0 204 No Content\r\nISTag: "fake-1"\r\n'
                b"X-Infection-Found: Type=0; Resolution=2; Threat=Fake.In.204;\r\n"
                b"Encapsulated: null-body=0\r\n\r\n"
            )
        if mode == "bad_http":
            head = b"XTTP/1.1 200 OK\r\n\r\n"
            return (
                (
                    f"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body={len(head)}\r\n\r\n"
                ).encode()
                + head
                + _chunked(self.content)
            )
        if mode == "partial":
            return self._echo(content=self.content[: len(self.content) // 2])
        if mode == "echo":
            return self._echo()
        if mode == "violations":
            return self._modified(
                "X-Violations-Found: 1\r\n\teicar.com\r\n\tFake.Violation.Name\r\n\t42\r\n\t2\r\n",
                "403 Forbidden",
                BLOCK_PAGE,
            )
        if mode == "folded":
            return self._modified(
                "x-infection-found:   Type=0;\r\n   Resolution=2;\r\n\t"
                "Threat=Fake.Folded.Name;\r\n",
                "403 Forbidden",
                BLOCK_PAGE,
            )
        if mode == "virus_id":
            return self._modified("X-Virus-ID: Fake.VirusID.Name\r\n", "200 OK", b"same bytes")
        if mode == "blocked":
            return self._modified("", "403 Forbidden", BLOCK_PAGE)
        if mode == "hostile":
            name = "Caf\u00e9\x01%s%n%x" + "V" * 4096
            return self._modified("X-Virus-ID: ", "403 Forbidden", BLOCK_PAGE).replace(
                b"X-Virus-ID: ", b"X-Virus-ID: " + name.encode("utf-8") + b"\r\n", 1
            )
        if mode == "error500":
            return b"ICAP/1.0 500 Server Error\r\nEncapsulated: null-body=0\r\n\r\n"
        return b'ICAP/1.0 204 No Content\r\nISTag: "fake-1"\r\nEncapsulated: null-body=0\r\n\r\n'

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
        self.content = b""
        keep = self.mode in KEEPS_CONTENT
        total, ieof = self._read_chunks(conn, buf, keep)
        if self.mode == "preview_virus" and preview is not None:
            self.bodies.append((preview, ieof, total))
            conn.sendall(
                self._modified("X-Virus-ID: Fake.In.Preview\r\n", "403 Forbidden", BLOCK_PAGE)
            )
            return
        if preview is not None and not ieof:
            conn.sendall(b"ICAP/1.0 100 Continue\r\n\r\n")
            if self.mode == "early_pass":
                self._pass_early(conn, buf)
                return
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
            more, _ = self._read_chunks(conn, buf, keep)
            total += more
        self.bodies.append((preview, ieof, total))
        if self.mode == "stall":
            while not self._stop.is_set():
                time.sleep(0.1)
            return
        if self.mode == "close":
            return
        if self.mode == "drip_answer":
            answer = b'ICAP/1.0 204 No Content\r\nISTag: "fake-1"\r\nX-Pad: ' + b"x" * 100000
            for byte in answer:
                if self._stop.wait(self.DRIP_INTERVAL):
                    return
                conn.sendall(bytes([byte]))
            return
        if self.mode == "garbage":
            conn.sendall(b"\x00\xffHELLO %s%n\r\n\r\n")
            return
        if self.mode in BY_CONTENT:
            self._by_content(conn)
            return
        conn.sendall(self._verdict())
