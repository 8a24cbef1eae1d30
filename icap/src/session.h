/*
 * One persistent ICAP connection and the two requests the plugin makes on it:
 * OPTIONS and RESPMOD (preview, "Allow: 204", chunked body, ieof). Knows the
 * protocol; knows nothing of the plugin API. The verdict is icap_parser's.
 */
#ifndef AVIR_ICAP_SESSION_H
#define AVIR_ICAP_SESSION_H

#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "connection.h"
#include "icap_parser.h"

namespace avicap {

struct Exchange {
    enum class Kind {
        Answer,    /* `response` (and `http`) hold the server's final answer */
        Transport, /* the connection failed; `error` says how */
        Timeout,   /* ScanTimeout ran out; `while_uploading` says in which phase */
        Protocol,  /* what came back is not ICAP; `error` says what, with an excerpt */
        File,      /* reading the file failed; `error` says how */
    };
    Kind kind = Kind::Transport;
    Response response;
    Returned returned; /* the encapsulated HTTP status and body size, what was sent */
    std::string error;
    bool nothing_received = false; /* Transport: the server sent not a byte (a dropped idle connection) */
    bool while_uploading = false;
};

/*
 * The verdict of an Answer to a RESPMOD: response_verdict, and a "clean" for a
 * file over the size the service scans (server.scan_limit) is Impossible: c-icap's
 * virus_scan answers 204 for an object over its MaxObjectSize without scanning it.
 */
ScanVerdict respmod_verdict(const Server &server, const Exchange &x);

class Session {
public:
    /* Connects to `server` within `timeout`; false with a sentence naming the server.
       `permanent`: a failure that waiting will not cure (permission denied). */
    bool open(const Server &server, Clock::duration timeout, std::string &error);
    bool open(const Server &server, Clock::duration timeout, std::string &error, bool &permanent);
    bool is_open() const { return conn_.is_open(); }
    void close() { conn_.close(); }
    void shutdown() { conn_.shutdown(); }
    /* Requests answered on this connection so far (0: fresh). */
    unsigned requests() const { return requests_; }

    /* OPTIONS for the server's service, within `timeout` in all. */
    Exchange options(const Server &server, Clock::duration timeout);

    /*
     * RESPMOD of `size` bytes of `fd` (from offset 0), `name` naming it in the
     * encapsulated request line. `timeout` is ScanTimeout: the longest silence
     * while sending, then the deadline for the answer; `deadline` (the scan's)
     * ends every step however the server paces it. `buffer` is the caller's,
     * reused across scans, so memory does not depend on the file size.
     */
    Exchange respmod(const Server &server, int fd, std::uint64_t size, const std::string &name,
                     std::size_t chunk, std::vector<char> &buffer, Clock::duration timeout,
                     Clock::time_point deadline);

private:
    /*
     * Reads a whole response (head, encapsulated headers, chunked body, trailers)
     * before `deadline`. Whatever is not consumed to its end closes the connection,
     * so that no byte of this answer is ever read as the next file's.
     */
    Exchange read_response(Clock::time_point deadline);
    /* The ICAP head and the encapsulated HTTP headers; false (x filled in) on failure. */
    bool read_head(Clock::time_point deadline, Exchange &x);
    /* The chunked body and its trailer lines; false (x filled in) on failure. */
    bool read_body(Clock::time_point deadline, Exchange &x);
    /* An Answer read to its end: counts it, and drops the connection if the server ends it
       or sent more than was asked. */
    void finish_answer(Exchange &x);
    /* The first answer came while the file was still being sent; reads it. */
    Exchange read_early_answer(Clock::time_point deadline);
    Exchange protocol_error(std::string what);
    Exchange transport(const boost::system::error_code &ec, bool nothing_received);
    bool send_chunks(int fd, std::uint64_t from, std::uint64_t to, std::size_t chunk,
                     std::vector<char> &buffer, Clock::duration idle, Clock::time_point deadline,
                     Exchange &x, bool &early, std::uint64_t &sent);

    Connection conn_;
    unsigned requests_ = 0;
};

} // namespace avicap

#endif
