#include "connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "discovery.h"
#include "resolve.h"
#include "reply_parser.h"

namespace avclam {

namespace asio = boost::asio;
using boost::system::error_code;
using generic_stream = asio::generic::stream_protocol;

std::string describe(const error_code &ec)
{
    if (ec == asio::error::not_found) /* the dynamic buffer's limit, in read_until */
        return "clamd's reply exceeded " + std::to_string(kMaxReplyLine) +
               " bytes without a terminator";
    if (ec == asio::error::eof)
        return "clamd closed the connection";
    if (ec == asio::error::timed_out)
        return "no reply within the timeout";
    return ec.message();
}

bool resolve_endpoints(Config &config, Clock::duration timeout, std::string &error)
{
    config.endpoints.clear();
    if (!config.uses_tcp()) {
        if (config.local_socket.size() >= sizeof(((sockaddr_un *)nullptr)->sun_path)) {
            error = "LocalSocket path " + printable_excerpt(config.local_socket, 200) +
                    " is too long for a UNIX socket";
            return false;
        }
        config.endpoints.emplace_back(asio::local::stream_protocol::endpoint(config.local_socket));
        return true;
    }
    error_code ec;
    std::vector<asio::ip::tcp::endpoint> found;
    switch (netplugin::resolve_tcp(config.address, config.port, timeout, found, ec)) {
    case netplugin::Resolution::TimedOut:
        error = "cannot resolve clamd host \"" + printable_excerpt(config.address) +
                "\": timed out; check Address and the DNS";
        return false;
    case netplugin::Resolution::Failed:
        error = "cannot resolve clamd host \"" + printable_excerpt(config.address) + "\": " +
                ec.message() + "; check the Address option";
        return false;
    case netplugin::Resolution::Found:
        break;
    }
    for (const auto &ep : found)
        config.endpoints.emplace_back(ep);
    return !config.endpoints.empty();
}

namespace {

std::string lowercase(std::string text)
{
    for (auto &c : text)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

/* What a failed connect to the UNIX socket means; permanent failures need no retry. */
SocketDiagnosis diagnose_unix(const Config &config, const error_code &last)
{
    if (!last || last.category() != asio::error::get_system_category()) {
        std::string why = last ? lowercase(last.message()) : std::string("no address");
        return {false, why + "; is clamav-daemon running with this LocalSocket?", why};
    }
    /* A path found by discovery may lack its folder while clamd is not started. */
    return diagnose_socket_error(last.value(), config.local_socket,
                                 inspect_path(config.local_socket), current_identity(),
                                 /*configured=*/!config.discover);
}

} // namespace

/* The message for a failed open(): what failed and what to check. */
std::string Connection::connect_error(const Config &config, bool timed_out, const error_code &last)
{
    const std::string prefix =
        "cannot connect to clamd at " + printable_excerpt(config.where(), 200) + ": ";
    if (!config.uses_tcp() && !timed_out) {
        SocketDiagnosis d = diagnose_unix(config, last);
        permanent_failure_ = d.permanent;
        failure_brief_ = d.brief;
        return prefix + d.text;
    }
    std::string why = timed_out ? std::string("timed out") : last ? last.message()
                                                                  : "no address";
    failure_brief_ = lowercase(why);
    return prefix + lowercase(why) +
           (config.uses_tcp() ? "; is clamav-daemon running and listening on TCP "
                                "(TCPSocket/TCPAddr in clamd.conf)?"
                              : "; is clamav-daemon running with this LocalSocket?");
}

bool Connection::open(const Config &config, Clock::duration timeout, std::string &error)
{
    close();
    permanent_failure_ = false;
    const Clock::time_point deadline = Clock::now() + timeout;
    const auto &endpoints = config.endpoints;
    error_code last;
    bool timed_out = false;
    for (const auto &ep : endpoints) {
        error_code ec = adopt_new_socket(ep);
        if (ec) {
            last = ec;
            continue;
        }
        if (!connect_to(ep, timeout, deadline, ec)) {
            timed_out = true;
            break;
        }
        if (!ec) {
            if (config.uses_tcp()) {
                /* One request is one write; Nagle would still hold the tail of
                   it for the peer's delayed ACK, ~40 ms per scan. */
                socket_.set_option(asio::ip::tcp::no_delay(true), ec);
            }
            tcp_ = config.uses_tcp();
            return true;
        }
        last = ec;
        close();
    }
    close();
    error = connect_error(config, timed_out, last);
    return false;
}

/*
 * sendmsg on the native handle, never blocking: while the socket is full, Asio
 * waits for room under the same silence bound as every other write. Ancillary
 * data goes with the first byte only. `msg` has one iovec, advanced as sent.
 */
error_code Connection::send_message(msghdr &msg, Clock::duration idle, Clock::time_point deadline)
{
    for (int rounds = 0; rounds < 1000; rounds++) {
        ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            msg.msg_iov->iov_base = static_cast<char *>(msg.msg_iov->iov_base) + n;
            msg.msg_iov->iov_len -= static_cast<std::size_t>(n);
            msg.msg_control = nullptr;
            msg.msg_controllen = 0;
            if (msg.msg_iov->iov_len == 0)
                return {};
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return error_code(errno, asio::error::get_system_category());
        bool done = false;
        error_code ec;
        socket_.async_wait(asio::socket_base::wait_write, [&](const error_code &e) {
            ec = e;
            done = true;
        });
        if (!run_until(done, idle, deadline))
            return asio::error::timed_out;
        if (ec)
            return ec;
    }
    return asio::error::timed_out; /* writable a thousand times, yet it never took the bytes */
}

error_code Connection::send_with_descriptor(const char *command, std::size_t len, int fd,
                                            Clock::duration idle, Clock::time_point deadline)
{
    /* Straight to the socket rather than through an Asio write: both messages are a
       few bytes and go at once, and a scan of a small file is mostly this overhead. */
    iovec command_iov{const_cast<char *>(command), len};
    msghdr command_msg{};
    command_msg.msg_iov = &command_iov;
    command_msg.msg_iovlen = 1;
    error_code ec = send_message(command_msg, idle, deadline);
    if (ec)
        return ec;

    char carrier = '\0';
    iovec iov{&carrier, 1};
    union {
        cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    return send_message(msg, idle, deadline);
}

void Connection::take_line(std::size_t n, std::string &line)
{
    line.assign(rbuf_, 0, n - 1);
    rbuf_.erase(0, n);
}

/*
 * clamd writes some replies in two pieces ("2: " and the rest) and its own Nagle
 * holds the second until we ACK the first; Linux delays that ACK by ~40 ms.
 * Quick-ACK mode is not sticky, so it is asked for before every read.
 */
void Connection::quick_ack()
{
    if (!tcp_)
        return;
    const int on = 1;
    ::setsockopt(fd_.load(), IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

error_code Connection::read_reply(std::string &line, Clock::duration timeout,
                                  Clock::time_point scan_deadline)
{
    const Clock::time_point deadline = netplugin::earlier(Clock::now() + timeout, scan_deadline);
    line.clear();
    quick_ack();
    bool done = false;
    error_code ec;
    std::size_t n = 0;
    asio::async_read_until(socket_, asio::dynamic_buffer(rbuf_, kMaxReplyLine + 1), '\0',
                           [&](const error_code &e, std::size_t got) {
                               ec = e;
                               n = got;
                               done = true;
                           });
    if (!run_until(done, timeout, deadline))
        return asio::error::timed_out;
    if (ec) {
        line.swap(rbuf_);
        rbuf_.clear();
        return ec;
    }
    take_line(n, line);
    return ec;
}

/* What one exchange() and its handlers share; it lives on exchange()'s stack. */
struct Connection::ExchangeState {
    ExchangeState(const Producer &producer, std::string &producer_error_out, Exchange &result)
        : next(producer), producer_error(producer_error_out), x(result)
    {
    }

    bool finished() const { return read_done && write_done; }
    /* The upload's bytes that `n` more written took off the front of `bufs`. */
    void consume(std::size_t n);

    const Producer &next;
    std::string &producer_error;
    Exchange &x; /* what exchange() returns */
    bool read_done = false;
    bool write_done = false;                                       /* no write is pending any more */
    bool last = false;                                             /* the write in flight is the Producer's last */
    std::size_t n = 0;                                             /* the reply's length with its NUL, once read */
    std::vector<asio::const_buffer> bufs;                          /* what is left of the write in flight */
    bool cancelled = false;                                        /* the upload was stopped for an early reply */
    Clock::time_point upload_progress{};                           /* when clamd last took bytes of the upload */
    Clock::time_point verdict_deadline = Clock::time_point::max(); /* set when the upload ends */
};

void Connection::ExchangeState::consume(std::size_t written)
{
    std::size_t i = 0;
    while (i < bufs.size() && written >= bufs[i].size())
        written -= bufs[i++].size();
    bufs.erase(bufs.begin(), bufs.begin() + static_cast<std::ptrdiff_t>(i));
    if (!bufs.empty())
        bufs.front() += written;
}

void Connection::start_reply_read(ExchangeState &s)
{
    quick_ack();
    asio::async_read_until(socket_, asio::dynamic_buffer(rbuf_, kMaxReplyLine + 1), '\0',
                           [&s](const error_code &e, std::size_t got) {
                               s.x.read_error = e;
                               s.n = got;
                               s.read_done = true;
                           });
}

/* Sends what the Producer gives next; each completed write starts the next
   one, until the last, a failure or clamd's reply. */
void Connection::write_next(ExchangeState &s)
{
    s.bufs.clear();
    s.last = false;
    if (!s.next(s.bufs, s.last, s.producer_error)) {
        s.x.producer_failed = true;
        s.write_done = true;
        return;
    }
    write_rest(s);
}

/* One write_some at a time, so that every byte clamd takes is seen as progress
   of the upload (and only those: bytes it sends are not). */
void Connection::write_rest(ExchangeState &s)
{
    socket_.async_write_some(s.bufs, [this, &s](const error_code &e, std::size_t written) {
        if (e) {
            s.x.write_error = e;
            s.write_done = true;
            return;
        }
        if (written > 0)
            s.upload_progress = Clock::now();
        s.consume(written);
        if (s.read_done)
            s.write_done = true; /* clamd has answered: the rest is not wanted */
        else if (!s.bufs.empty())
            write_rest(s);
        else if (s.last)
            s.write_done = true;
        else
            write_next(s);
    });
}

/*
 * Runs the handlers until both the reply and the upload are done, or the
 * Producer failed. False (everything aborted, x.timed_out set) when the
 * bounds of exchange() ran out: ScanTimeout without upload progress, then
 * ScanTimeout for the verdict, and the scan's `deadline` throughout.
 */
bool Connection::run_exchange(ExchangeState &s, Clock::duration timeout, Clock::time_point deadline)
{
    s.upload_progress = Clock::now();
    while (!s.finished()) {
        if (s.x.producer_failed)
            break;
        const Clock::time_point now = Clock::now();
        if (s.write_done && !s.x.upload_finished) {
            s.x.upload_finished = true;
            s.verdict_deadline = now + timeout;
        }
        const Clock::time_point until = netplugin::earlier(
            deadline, s.write_done ? s.verdict_deadline : s.upload_progress + timeout);
        if (now >= until) {
            s.x.timed_out = true;
            abort();
            return false;
        }
        io_.restart();
        io_.run_one_for(until - now);
        if (s.read_done && !s.write_done && !s.cancelled) {
            /* clamd answered before the end (a size limit): stop uploading. */
            s.x.replied_early = true;
            s.cancelled = true;
            error_code ignored;
            socket_.cancel(ignored);
        }
    }
    return true;
}

Connection::Exchange Connection::exchange(const Producer &next, std::string &producer_error,
                                          Clock::duration timeout, Clock::time_point deadline)
{
    Exchange x;
    ExchangeState s(next, producer_error, x);
    start_reply_read(s);
    write_next(s);

    /* A failed upload still waits for the reply: clamd often explains why it stopped. */
    if (!run_exchange(s, timeout, deadline))
        return x;
    if (x.producer_failed) {
        abort();
        return x;
    }
    if (s.read_done && !x.read_error) {
        take_line(s.n, x.reply);
    } else {
        x.reply.swap(rbuf_);
        rbuf_.clear();
    }
    return x;
}

} // namespace avclam
