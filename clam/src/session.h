/*
 * A clamd IDSESSION: several commands over one connection, each reply
 * prefixed with the number of its request. Knows the protocol (z-commands,
 * INSTREAM chunk framing); knows nothing of verdicts or of the plugin API.
 */
#ifndef AVIR_CLAM_SESSION_H
#define AVIR_CLAM_SESSION_H

#include <cstdint>
#include <string>
#include <vector>

#include "connection.h"
#include "reply_parser.h"

namespace avclam {

struct StreamResult {
    enum class Kind {
        Reply,     /* `reply` is clamd's answer to this INSTREAM (still to be parsed) */
        Transport, /* the connection failed; clamd may have closed the session */
        Timeout,   /* ScanTimeout ran out; `while_uploading` says in which phase */
        Overlong,  /* the reply exceeded kMaxReplyLine; `error` says so, `reply` holds its start */
        File,      /* reading the file failed; `error` says how */
    };
    Kind kind = Kind::Transport;
    std::string reply;
    std::string error;
    std::uint32_t request_id = 0;
    bool session_spoiled = false; /* the session cannot carry another command */
    bool while_uploading = false; /* Timeout: clamd stopped taking the file, not answering */
};

class Session {
public:
    /* Connects and starts IDSESSION. */
    bool open(const Config &config, Clock::duration connect_timeout, std::string &error);
    bool is_open() const { return conn_.is_open(); }
    /* Ends the session politely (END) when it is healthy, then closes the socket. */
    void close();
    void shutdown() { conn_.shutdown(); }

    bool ping(Clock::duration timeout, std::string &error);
    bool version(Clock::duration timeout, ClamdVersion &out, std::string &error);

    /*
     * Sends `fd` from offset 0 to its end as INSTREAM chunks of `chunk` bytes,
     * using `buffer` (kept by the caller, reused across scans) so that memory
     * does not depend on the file size. What the file holds counts, not its
     * size when opened: a file that grows meanwhile is sent as it is read, and
     * one whose size reads 0 (under /proc) is sent whole. `timeout` is
     * ScanTimeout, as Connection::exchange applies it (no upload progress,
     * then the verdict), `deadline` the scan's.
     */
    StreamResult instream(int fd, std::size_t chunk, std::vector<char> &buffer,
                          Clock::duration timeout, Clock::time_point deadline);

    /*
     * FILDES: passes the open file `fd` to clamd, which reads it itself (UNIX
     * socket only). `timeout` is ScanTimeout: for taking the request, then in
     * all for the verdict; `deadline` is the scan's. A refusal (fildes_refused)
     * comes back as a Reply.
     */
    StreamResult fildes(int fd, Clock::duration timeout, Clock::time_point deadline);

    /* INSTREAM of `size` bytes in memory (a probe, not a file), within `timeout`. */
    StreamResult instream_bytes(const unsigned char *data, std::uint32_t size,
                                Clock::duration timeout);

    /* After a failed open(): retrying cannot help (no permission, not a socket...). */
    bool failed_for_good() const { return conn_.failed_for_good(); }
    const std::string &failure_brief() const { return conn_.failure_brief(); }

    /* When the last command finished: the keep-alive pings sessions idle for long. */
    Clock::time_point last_used() const { return last_used_; }

private:
    bool command(const char *cmd, std::size_t len, Clock::duration timeout, std::string &reply,
                 std::string &error);
    /* What an INSTREAM's exchange came to; closes the connection when the session is spoiled. */
    StreamResult stream_result(Connection::Exchange &x, const std::string &file_error,
                               std::uint32_t request_id);

    Connection conn_;
    std::uint32_t next_id_ = 1;
    Clock::time_point last_used_{};
};

} // namespace avclam

#endif
