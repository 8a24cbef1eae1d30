#include "session.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "scan_file.h"

#ifndef ICAP_PLUGIN_VERSION
#define ICAP_PLUGIN_VERSION "0.0.0"
#endif

namespace avicap {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr char kUserAgent[] = "avir_icap/" ICAP_PLUGIN_VERSION " (Kerio antivirus plugin)";

using netplugin::read_at;

std::string request_line(const char *method, const Server &server)
{
    return std::string(method) + " " + server.uri() + " ICAP/1.0\r\nHost: " + server.authority() +
           "\r\nUser-Agent: " + kUserAgent + "\r\n";
}

std::string hex(std::uint64_t n)
{
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(n));
    return buf;
}

bool is_eof_like(const error_code &ec)
{
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

} // namespace

bool Session::open(const Server &server, Clock::duration timeout, std::string &error)
{
    bool permanent = false;
    return open(server, timeout, error, permanent);
}

bool Session::open(const Server &server, Clock::duration timeout, std::string &error,
                   bool &permanent)
{
    requests_ = 0;
    error_code ec;
    bool timed_out = false;
    permanent = false;
    if (conn_.open(server.endpoints, timeout, ec, timed_out))
        return true;
    error = "cannot connect to the ICAP server " + server.uri() + ": " +
            (timed_out ? std::string("timed out") : ec.message());
    /* A refused or silent connection is a server still starting; a denied one is a
       firewall or security policy (SELinux, AppArmor), which waiting does not change. */
    if (!timed_out && (ec == asio::error::access_denied || ec == asio::error::no_permission)) {
        permanent = true;
        error += "; a firewall rule or security policy forbids this process to connect there: "
                 "allow avserver to reach " +
                 server.authority();
    }
    return false;
}

Exchange Session::transport(const error_code &ec, bool nothing_received)
{
    Exchange x;
    if (ec == asio::error::timed_out) {
        x.kind = Exchange::Kind::Timeout;
    } else if (ec == asio::error::not_found) {
        x.kind = Exchange::Kind::Protocol;
        x.error = describe(ec) + " (it began \"" + printable_excerpt(conn_.pending(), 40) + "\")";
    } else {
        x.kind = Exchange::Kind::Transport;
        x.error = describe(ec);
        x.nothing_received = nothing_received && is_eof_like(ec);
    }
    conn_.close();
    return x;
}

Exchange Session::protocol_error(std::string what)
{
    Exchange x;
    x.kind = Exchange::Kind::Protocol;
    x.error = std::move(what);
    conn_.close();
    return x;
}

bool Session::read_head(Clock::time_point deadline, Exchange &x)
{
    std::string head;
    error_code ec = conn_.read_until("\r\n\r\n", kMaxHead, deadline, head);
    if (ec) {
        x = transport(ec, conn_.pending().empty());
        return false;
    }
    if (!parse_response_head(head, x.response)) {
        x = protocol_error("not an ICAP response: \"" + printable_excerpt(head, 60) + "\"");
        return false;
    }
    if (x.response.status == 100)
        return true;
    const Encapsulated &enc = x.response.encapsulated;
    long long header_bytes = enc.header_bytes();
    if (header_bytes > static_cast<long long>(kMaxHead)) {
        x = protocol_error("encapsulated headers of " + std::to_string(header_bytes) + " bytes");
        return false;
    }
    if (header_bytes > 0) {
        std::string http;
        ec = conn_.read_exact(static_cast<std::size_t>(header_bytes), deadline, http);
        if (ec) {
            x = transport(ec, false);
            return false;
        }
        if (enc.res_hdr >= 0 && enc.res_hdr < header_bytes)
            x.returned.http =
                http_status(std::string_view(http).substr(static_cast<std::size_t>(enc.res_hdr)));
    }
    return true;
}

bool Session::read_body(Clock::time_point deadline, Exchange &x)
{
    if (!x.response.encapsulated.has_body())
        return true;
    /* The body is counted and dropped: its size tells whether the content came back whole. */
    std::uint64_t total = 0;
    for (;;) {
        std::string line;
        error_code ec = conn_.read_until("\r\n", kMaxChunkLine, deadline, line);
        if (ec) {
            x = transport(ec, false);
            return false;
        }
        std::uint64_t size = 0;
        if (!parse_chunk_size(std::string_view(line).substr(0, line.size() - 2), size)) {
            x = protocol_error("bad chunk size line \"" + printable_excerpt(line, 40) + "\"");
            return false;
        }
        if (size == 0)
            break;
        ec = conn_.discard(size, deadline);
        std::string crlf;
        if (!ec)
            ec = conn_.read_exact(2, deadline, crlf);
        if (ec) {
            x = transport(ec, false);
            return false;
        }
        if (crlf != "\r\n") {
            x = protocol_error("chunk not followed by CRLF");
            return false;
        }
        total += size;
    }
    /* Trailer lines up to the empty one. More than a server has any use for is an
       attack on the connection's framing: the response is not trusted, the connection
       not kept. */
    for (int i = 0;; i++) {
        if (i == kMaxTrailerLines) {
            x = protocol_error("more than " + std::to_string(kMaxTrailerLines) +
                               " trailer lines after the body");
            return false;
        }
        std::string line;
        error_code ec = conn_.read_until("\r\n", kMaxChunkLine, deadline, line);
        if (ec) {
            x = transport(ec, false);
            return false;
        }
        if (line == "\r\n")
            break;
    }
    x.returned.body_bytes = static_cast<long long>(total);
    return true;
}

void Session::finish_answer(Exchange &x)
{
    x.kind = Exchange::Kind::Answer;
    requests_++;
    /* Bytes after the end of the answer belong to no request of ours: a next
       request on this connection would take them for its answer. */
    if (x.response.close || !conn_.pending().empty())
        conn_.close();
}

Exchange Session::read_response(Clock::time_point deadline)
{
    Exchange x;
    if (!read_head(deadline, x))
        return x;
    if (x.response.status == 100) {
        x.kind = Exchange::Kind::Answer;
        return x; /* the caller sends the rest */
    }
    if (!read_body(deadline, x))
        return x;
    finish_answer(x);
    return x;
}

Exchange Session::read_early_answer(Clock::time_point deadline)
{
    Exchange x;
    if (!read_head(deadline, x))
        return x;
    /* An answer that returns the content unchanged while the content is still on its
       way cannot be a verdict on it: c-icap's virus_scan streams a part of a large
       file back this way (SendPercentData) and waits for the rest, which will not
       come, since the upload stopped. */
    const bool passing = x.response.status == 200 && x.returned.http >= 200 &&
                         x.returned.http <= 299 &&
                         response_verdict(x.response, Returned{x.returned.http, 0, 0}).verdict ==
                             Verdict::Clean;
    if (passing)
        return protocol_error(
            "it began returning the content before it had all of it, so it had not scanned it "
            "(c-icap's virus_scan does so above StartSendPercentDataAfter when SendPercentData "
            "is set: use its avscan service, or set virus_scan.SendPercentData 0)");
    if (x.response.status == 100)
        return protocol_error("100 Continue while the rest of the file was being sent");
    if (read_body(deadline, x))
        finish_answer(x);
    return x;
}

Exchange Session::options(const Server &server, Clock::duration timeout)
{
    const Clock::time_point deadline = Clock::now() + timeout;
    std::string req = request_line("OPTIONS", server) + "Encapsulated: null-body=0\r\n\r\n";
    error_code ec = conn_.write({asio::buffer(req)}, timeout);
    if (ec)
        return transport(ec, true);
    Exchange x = read_response(deadline);
    if (x.kind == Exchange::Kind::Answer && x.response.status == 100) {
        x.kind = Exchange::Kind::Protocol;
        x.error = "100 Continue in answer to OPTIONS";
        conn_.close();
    }
    return x;
}

/*
 * Sends bytes [from, to) of `fd` as chunks of at most `chunk` bytes, one write
 * each. Stops early (setting `early`) when the server has already answered.
 */
bool Session::send_chunks(int fd, std::uint64_t from, std::uint64_t to, std::size_t chunk,
                          std::vector<char> &buffer, Clock::duration idle,
                          Clock::time_point deadline, Exchange &x, bool &early,
                          std::uint64_t &sent)
{
    early = false;
    buffer.resize(chunk);
    std::uint64_t offset = from;
    while (offset < to) {
        if (conn_.has_input()) {
            early = true; /* a final answer before the end: read it, drop the connection after */
            return true;
        }
        std::size_t want = to - offset < chunk ? static_cast<std::size_t>(to - offset) : chunk;
        std::size_t got = 0;
        if (!read_at(fd, buffer.data(), want, offset, got, x.error)) {
            x.kind = Exchange::Kind::File;
            conn_.close();
            return false;
        }
        if (got == 0)
            return true; /* the file shrank while we read it: send what there was */
        std::string size_line = hex(got) + "\r\n";
        error_code ec = conn_.write(
            {asio::buffer(size_line), asio::buffer(buffer.data(), got), asio::buffer("\r\n", 2)},
            idle, deadline);
        if (ec) {
            if (ec != asio::error::timed_out && conn_.is_open() && conn_.has_input()) {
                early = true; /* it answered and stopped reading: take the answer */
                return true;
            }
            x = transport(ec, offset == 0 && requests_ > 0);
            x.while_uploading = true;
            return false;
        }
        offset += got;
        sent = offset;
    }
    return true;
}

Exchange Session::respmod(const Server &server, int fd, std::uint64_t size,
                          const std::string &name, std::size_t chunk, std::vector<char> &buffer,
                          Clock::duration timeout, Clock::time_point deadline)
{
    /* A request and a response header as a web proxy would pass them: c-icap logs the URL. */
    const std::string req_hdr = "GET /" + url_escape(name) + " HTTP/1.1\r\nHost: kerio-avserver\r\n\r\n";
    const std::string res_hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                "Content-Length: " +
                                std::to_string(size) + "\r\n\r\n";
    const bool preview = server.preview >= 0;
    const std::uint64_t preview_bytes =
        preview ? std::min<std::uint64_t>(static_cast<std::uint64_t>(server.preview), size) : 0;
    std::string head = request_line("RESPMOD", server) + "Allow: 204\r\n";
    if (preview)
        head += "Preview: " + std::to_string(preview_bytes) + "\r\n";
    head += "Encapsulated: req-hdr=0, res-hdr=" + std::to_string(req_hdr.size()) +
            ", res-body=" + std::to_string(req_hdr.size() + res_hdr.size()) + "\r\n\r\n" + req_hdr +
            res_hdr;
    const bool reused = requests_ > 0;

    Exchange x;
    if (reused && conn_.has_input()) {
        /* Bytes nobody asked for wait on the kept connection: they would be read as
           this file's answer. A fresh connection, as after a server's close. */
        x.kind = Exchange::Kind::Transport;
        x.nothing_received = true;
        x.error = "it sent bytes nobody asked for on the kept connection";
        conn_.close();
        return x;
    }
    std::uint64_t sent = 0;
    if (preview) {
        /* Headers, the preview and its end in one write: ieof when it holds the whole file. */
        buffer.resize(static_cast<std::size_t>(preview_bytes) + 1);
        std::size_t got = 0;
        if (!read_at(fd, buffer.data(), static_cast<std::size_t>(preview_bytes), 0, got, x.error)) {
            x.kind = Exchange::Kind::File;
            return x;
        }
        sent = got;
        const bool whole = got == size || got < preview_bytes;
        std::string size_line = got > 0 ? hex(got) + "\r\n" : std::string();
        std::string tail = std::string(got > 0 ? "\r\n" : "") + (whole ? "0; ieof\r\n\r\n" : "0\r\n\r\n");
        error_code ec = conn_.write({asio::buffer(head), asio::buffer(size_line),
                                     asio::buffer(buffer.data(), got), asio::buffer(tail)},
                                    timeout, deadline);
        if (ec) {
            x = transport(ec, reused);
            x.while_uploading = true;
            return x;
        }
        x = read_response(netplugin::earlier(Clock::now() + timeout, deadline));
        if (x.kind != Exchange::Kind::Answer || x.response.status != 100) {
            /* A final answer to the preview (204, a virus in the first bytes), or a
               failure: an answer about the whole content, of which it saw the preview. */
            x.returned.sent = whole ? sent : size;
            return x;
        }
        if (whole) {
            x.kind = Exchange::Kind::Protocol;
            x.error = "100 Continue after the whole file was sent (ieof)";
            conn_.close();
            return x;
        }
    } else {
        error_code ec = conn_.write({asio::buffer(head)}, timeout, deadline);
        if (ec) {
            x = transport(ec, reused);
            x.while_uploading = true;
            return x;
        }
    }
    bool early = false;
    if (!send_chunks(fd, sent, size, chunk, buffer, timeout, deadline, x, early, sent))
        return x;
    if (!early) {
        error_code ec = conn_.write({asio::buffer("0\r\n\r\n", 5)}, timeout, deadline);
        if (ec && !conn_.has_input()) {
            x = transport(ec, false);
            x.while_uploading = true;
            return x;
        }
    }
    if (early) {
        x = read_early_answer(netplugin::earlier(Clock::now() + timeout, deadline));
        conn_.close(); /* the request body was cut short: this connection is out of step */
    } else {
        x = read_response(netplugin::earlier(Clock::now() + timeout, deadline));
        if (x.kind == Exchange::Kind::Answer && x.response.status == 100)
            x = protocol_error("a second 100 Continue");
    }
    /* An early answer is about the whole content, though only a part of it had come. */
    x.returned.sent = early ? size : sent;
    return x;
}

ScanVerdict respmod_verdict(const Server &server, const Exchange &x)
{
    ScanVerdict v = response_verdict(x.response, x.returned);
    if (v.verdict != Verdict::Clean || server.scan_limit == 0 || x.returned.sent <= server.scan_limit)
        return v;
    return {Verdict::Impossible,
            std::to_string(x.returned.sent) + " bytes, over the " +
                std::to_string(server.scan_limit) + " bytes the ICAP service " + server.service +
                " is known to scan (" + server.scan_limit_source +
                "): its \"no virus\" may mean \"not scanned\"; set ServiceMaxSize to the size "
                "it scans (0: no limit)"};
}

} // namespace avicap
