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
    int http = 0;                 /* the encapsulated HTTP status, 0 when none */
    std::string error;
    bool nothing_received = false; /* Transport: the server sent not a byte (a dropped idle connection) */
    bool while_uploading = false;
};

class Session {
public:
    /* Connects to `server` within `timeout`; false with a sentence naming the server. */
    bool open(const Server &server, Clock::duration timeout, std::string &error);
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
    /* Reads a whole response (head, encapsulated headers, chunked body) before `deadline`. */
    Exchange read_response(Clock::time_point deadline);
    Exchange transport(const boost::system::error_code &ec, bool nothing_received);
    bool send_chunks(int fd, std::uint64_t from, std::uint64_t to, std::size_t chunk,
                     std::vector<char> &buffer, Clock::duration idle, Clock::time_point deadline,
                     Exchange &x, bool &early);

    Connection conn_;
    unsigned requests_ = 0;
};

} // namespace avicap

#endif
