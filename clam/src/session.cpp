#include "session.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "scan_file.h"

namespace avclam {

namespace asio = boost::asio;

namespace {

/* z-commands end with NUL and make clamd end its replies with NUL as well. */
constexpr char kIdSession[] = "zIDSESSION";
constexpr char kPing[] = "zPING";
constexpr char kVersion[] = "zVERSION";
constexpr char kInstream[] = "zINSTREAM";
constexpr char kEnd[] = "zEND";
constexpr char kFildes[] = "zFILDES";

void put_be32(char *p, std::uint32_t v)
{
    p[0] = static_cast<char>(v >> 24);
    p[1] = static_cast<char>(v >> 16);
    p[2] = static_cast<char>(v >> 8);
    p[3] = static_cast<char>(v);
}

using netplugin::read_at;

/*
 * INSTREAM's upload as a Connection::Producer: the command, then `fd` from
 * offset 0 up to its end as chunks of at most `chunk` bytes, one per write,
 * read into `buffer` so that memory does not depend on the file size. Up to
 * the end the reads find, not the size fstat gave: INSTREAM needs no length up
 * front, so a file that grew meanwhile is sent whole, as is a /proc file whose
 * size reads 0.
 */
class InstreamUpload {
public:
    InstreamUpload(int fd, std::size_t chunk, std::vector<char> &buffer)
        : fd_(fd), chunk_(chunk), buffer_(buffer)
    {
        /* Layout: [4-byte length][chunk bytes][4-byte zero end marker]. */
        buffer.resize(4 + chunk + 4);
    }

    bool operator()(std::vector<asio::const_buffer> &out, bool &last, std::string &error)
    {
        if (first_)
            out.push_back(asio::buffer(kInstream, sizeof kInstream));
        first_ = false;
        char *data = buffer_.data();
        std::size_t got = 0;
        if (!read_at(fd_, data + 4, chunk_, offset_, got, error))
            return false;
        offset_ += got;
        last = got < chunk_; /* read_at falls short only at the end of the file */
        std::size_t len = 0;
        if (got > 0) {
            put_be32(data, static_cast<std::uint32_t>(got));
            len = 4 + got;
        }
        if (last) {
            /* The end marker rides in the same write as the last chunk. */
            put_be32(data + len, 0);
            len += 4;
        }
        out.push_back(asio::buffer(data, len));
        return true;
    }

private:
    int fd_;
    std::size_t chunk_;
    std::vector<char> &buffer_; /* the caller's, reused across scans */
    std::uint64_t offset_ = 0;
    bool first_ = true;
};

/* INSTREAM's upload of bytes in memory, as one write: command, one chunk, end marker. */
class MemoryUpload {
public:
    MemoryUpload(const unsigned char *data, std::uint32_t size)
        : data_(data), size_(size)
    {
        put_be32(head_, size);
        put_be32(tail_, 0);
    }

    bool operator()(std::vector<asio::const_buffer> &out, bool &last, std::string &)
    {
        out.push_back(asio::buffer(kInstream, sizeof kInstream));
        out.push_back(asio::buffer(head_, sizeof head_));
        out.push_back(asio::buffer(data_, size_));
        out.push_back(asio::buffer(tail_, sizeof tail_));
        last = true;
        return true;
    }

private:
    const unsigned char *data_;
    std::uint32_t size_;
    char head_[4];
    char tail_[4];
};

} // namespace

bool Session::open(const Config &config, Clock::duration connect_timeout, std::string &error)
{
    close();
    if (!conn_.open(config, connect_timeout, error))
        return false;
    next_id_ = 1;
    /* IDSESSION has no reply; with TCP_NODELAY its own small write costs no ACK wait. */
    auto ec = conn_.write({asio::buffer(kIdSession, sizeof kIdSession)}, connect_timeout);
    if (ec) {
        error = "cannot start a session with clamd at " + config.where() + ": " + ec.message();
        conn_.close();
        return false;
    }
    last_used_ = Clock::now();
    return true;
}

void Session::close()
{
    if (conn_.is_open()) {
        /* Best effort with a short deadline: clamd frees the session at once
           instead of after its IdleTimeout. */
        conn_.write({asio::buffer(kEnd, sizeof kEnd)}, std::chrono::milliseconds(200));
    }
    conn_.close();
}

bool Session::command(const char *cmd, std::size_t len, Clock::duration timeout,
                      std::string &reply, std::string &error)
{
    auto ec = conn_.write({asio::buffer(cmd, len)}, timeout);
    if (!ec)
        ec = conn_.read_reply(reply, timeout);
    next_id_++;
    if (ec) {
        error = describe(ec);
        if (!reply.empty())
            error += " (clamd said \"" + printable_excerpt(reply) + "\")";
        conn_.close();
        return false;
    }
    last_used_ = Clock::now();
    return true;
}

bool Session::ping(Clock::duration timeout, std::string &error)
{
    std::string reply;
    std::uint32_t id = next_id_;
    if (!command(kPing, sizeof kPing, timeout, reply, error))
        return false;
    if (!is_pong(reply, id)) {
        error = "PING answered with \"" + printable_excerpt(reply) + "\"";
        conn_.close();
        return false;
    }
    return true;
}

bool Session::version(Clock::duration timeout, ClamdVersion &out, std::string &error)
{
    std::string reply;
    std::uint32_t id = next_id_;
    if (!command(kVersion, sizeof kVersion, timeout, reply, error))
        return false;
    if (!parse_version(reply, id, out)) {
        error = "VERSION answered with \"" + printable_excerpt(reply) + "\"";
        conn_.close();
        return false;
    }
    return true;
}

StreamResult Session::instream(int fd, std::size_t chunk, std::vector<char> &buffer,
                               Clock::duration timeout, Clock::time_point deadline)
{
    const std::uint32_t request_id = next_id_++;
    std::string file_error;
    Connection::Exchange x =
        conn_.exchange(InstreamUpload(fd, chunk, buffer), file_error, timeout, deadline);
    return stream_result(x, file_error, request_id);
}

StreamResult Session::fildes(int fd, Clock::duration timeout, Clock::time_point deadline)
{
    StreamResult result;
    result.request_id = next_id_++;
    result.session_spoiled = true; /* until a complete reply says otherwise */
    auto ec = conn_.send_with_descriptor(kFildes, sizeof kFildes, fd, timeout, deadline);
    if (ec == asio::error::timed_out) {
        result.kind = StreamResult::Kind::Timeout;
        result.while_uploading = true;
        conn_.close();
        return result;
    }
    /* A clamd that refuses FILDES may answer and hang up before the descriptor is
       sent: its reply, already here, says more than the broken pipe. */
    const auto send_error = ec;
    ec = conn_.read_reply(result.reply, timeout, deadline);
    if (ec == asio::error::timed_out) {
        result.kind = StreamResult::Kind::Timeout;
        conn_.close();
        return result;
    }
    if (ec) {
        result.kind = ec == asio::error::not_found ? StreamResult::Kind::Overlong
                                                   : StreamResult::Kind::Transport;
        result.error = describe(send_error ? send_error : ec);
        conn_.close();
        return result;
    }
    result.kind = StreamResult::Kind::Reply;
    result.session_spoiled = static_cast<bool>(send_error);
    if (send_error)
        conn_.close();
    last_used_ = Clock::now();
    return result;
}

StreamResult Session::instream_bytes(const unsigned char *data, std::uint32_t size,
                                     Clock::duration timeout)
{
    const std::uint32_t request_id = next_id_++;
    std::string unused;
    Connection::Exchange x = conn_.exchange(MemoryUpload(data, size), unused, timeout);
    return stream_result(x, unused, request_id);
}

StreamResult Session::stream_result(Connection::Exchange &x, const std::string &file_error,
                                    std::uint32_t request_id)
{
    StreamResult result;
    result.request_id = request_id;
    if (x.producer_failed) {
        result.kind = StreamResult::Kind::File;
        result.error = file_error;
        result.session_spoiled = true;
        return result;
    }
    if (x.timed_out) {
        result.kind = StreamResult::Kind::Timeout;
        result.while_uploading = !x.upload_finished;
        result.session_spoiled = true;
        return result;
    }
    result.reply = std::move(x.reply);
    if (x.read_error == asio::error::not_found) {
        /* Not a dropped session: clamd (or whatever listens there) is talking
           nonsense, and reconnecting would not change that. */
        result.kind = StreamResult::Kind::Overlong;
        result.error = describe(x.read_error);
        result.session_spoiled = true;
        conn_.close();
        return result;
    }
    if (x.read_error) {
        result.kind = StreamResult::Kind::Transport;
        result.error = describe(x.read_error);
        if (x.write_error && x.write_error != x.read_error)
            result.error += " (sending: " + x.write_error.message() + ")";
        result.session_spoiled = true;
        conn_.close();
        return result;
    }
    result.kind = StreamResult::Kind::Reply;
    /* An early reply or a failed write leaves the session mid-command. */
    result.session_spoiled = x.replied_early || static_cast<bool>(x.write_error);
    if (result.session_spoiled)
        conn_.close();
    last_used_ = Clock::now();
    return result;
}

} // namespace avclam
