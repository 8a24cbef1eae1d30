#include "connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

namespace avicap {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::size_t kDiscardPiece = 64 * 1024;
}

Connection::Connection() : socket_(io_) {}

Connection::~Connection()
{
    close();
}

bool Connection::is_open() const
{
    return socket_.is_open();
}

void Connection::close()
{
    fd_.store(-1);
    error_code ignored;
    socket_.close(ignored);
    rbuf_.clear();
}

void Connection::shutdown()
{
    int fd = fd_.load();
    if (fd >= 0)
        ::shutdown(fd, SHUT_RDWR);
}

/*
 * Runs handlers until `done`. Fails (and cancels everything) when no handler
 * ran for `idle` or the absolute `deadline` passed.
 */
bool Connection::run_until(const bool &done, Clock::duration idle, Clock::time_point deadline)
{
    io_.restart();
    while (!done) {
        Clock::duration wait = idle;
        Clock::time_point now = Clock::now();
        if (now >= deadline) {
            abort();
            return false;
        }
        if (deadline - now < wait)
            wait = deadline - now;
        if (io_.run_one_for(wait) == 0 && !done) {
            abort();
            return false;
        }
    }
    return true;
}

/* Closing the socket completes every pending operation with operation_aborted;
   running them out keeps no handler alive that points into a finished call. */
void Connection::abort()
{
    close();
    io_.restart();
    io_.run();
    io_.restart();
}

std::string describe(const error_code &ec)
{
    if (ec == asio::error::not_found) /* the dynamic buffer's limit, in read_until */
        return "the server's response exceeded its size limit without a terminator";
    if (ec == asio::error::eof)
        return "the server closed the connection";
    if (ec == asio::error::timed_out)
        return "no response within the timeout";
    return ec.message();
}

error_code Connection::adopt_new_socket(const Endpoint &ep)
{
    /* Asio's socket_.open() calls socket() without SOCK_CLOEXEC: the product
       forks helpers at any moment, and a descriptor it inherits keeps the ICAP
       connection half-open in the child. Created close-on-exec, then adopted. */
    int fd = ::socket(ep.protocol().family(), ep.protocol().type() | SOCK_CLOEXEC,
                      ep.protocol().protocol());
    if (fd < 0)
        return error_code(errno, asio::error::get_system_category());
    error_code ec;
    socket_.assign(ep.protocol(), fd, ec);
    if (ec) {
        ::close(fd);
        return ec;
    }
    fd_.store(socket_.native_handle());
    return ec;
}

bool Connection::open(const std::vector<Endpoint> &endpoints, Clock::duration timeout,
                      error_code &error, bool &timed_out)
{
    close();
    timed_out = false;
    const Clock::time_point deadline = Clock::now() + timeout;
    error = asio::error::host_not_found;
    for (const auto &ep : endpoints) {
        error_code ec = adopt_new_socket(ep);
        if (ec) {
            error = ec;
            continue;
        }
        bool done = false;
        socket_.async_connect(ep, [&](const error_code &e) {
            ec = e;
            done = true;
        });
        if (!run_until(done, timeout, deadline)) {
            timed_out = true;
            error = asio::error::timed_out;
            break;
        }
        if (!ec) {
            /* A request is a few writes; Nagle would hold their tails for the
               server's delayed ACK. */
            socket_.set_option(asio::ip::tcp::no_delay(true), ec);
            return true;
        }
        error = ec;
        close();
    }
    close();
    return false;
}

error_code Connection::write(const std::vector<asio::const_buffer> &data, Clock::duration idle)
{
    bool done = false;
    error_code ec;
    asio::async_write(socket_, data, [&](const error_code &e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until(done, idle, Clock::time_point::max()))
        return asio::error::timed_out;
    return ec;
}

bool Connection::has_input()
{
    if (!rbuf_.empty())
        return true;
    error_code ec;
    std::size_t n = socket_.available(ec);
    return ec || n > 0;
}

error_code Connection::read_until(std::string_view delim, std::size_t limit,
                                  Clock::time_point deadline, std::string &out)
{
    out.clear();
    bool done = false;
    error_code ec;
    std::size_t n = 0;
    asio::async_read_until(socket_, asio::dynamic_buffer(rbuf_, limit), std::string(delim),
                           [&](const error_code &e, std::size_t got) {
                               ec = e;
                               n = got;
                               done = true;
                           });
    if (!run_until(done, Clock::duration::max(), deadline))
        return asio::error::timed_out;
    if (ec)
        return ec;
    out.assign(rbuf_, 0, n);
    rbuf_.erase(0, n);
    return ec;
}

error_code Connection::read_exact(std::size_t n, Clock::time_point deadline, std::string &out)
{
    out.clear();
    if (rbuf_.size() < n) {
        bool done = false;
        error_code ec;
        asio::async_read(socket_, asio::dynamic_buffer(rbuf_),
                         asio::transfer_exactly(n - rbuf_.size()),
                         [&](const error_code &e, std::size_t) {
                             ec = e;
                             done = true;
                         });
        if (!run_until(done, Clock::duration::max(), deadline))
            return asio::error::timed_out;
        if (ec)
            return ec;
    }
    out.assign(rbuf_, 0, n);
    rbuf_.erase(0, n);
    return {};
}

error_code Connection::discard(std::uint64_t n, Clock::time_point deadline)
{
    std::string piece;
    while (n > 0) {
        std::size_t take = n < kDiscardPiece ? static_cast<std::size_t>(n) : kDiscardPiece;
        error_code ec = read_exact(take, deadline, piece);
        if (ec)
            return ec;
        n -= take;
    }
    return {};
}

} // namespace avicap
