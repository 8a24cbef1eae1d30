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
        if (!connect_to(ep, timeout, deadline, ec)) {
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
    /* What is buffered already is searched here: asio's dynamic buffer with a limit
       below the buffered size cuts the buffer down to that limit (the bytes of a
       body after its chunk-size line were lost). */
    const std::size_t found = rbuf_.substr(0, limit).find(delim);
    if (found != std::string::npos) {
        out.assign(rbuf_, 0, found + delim.size());
        rbuf_.erase(0, found + delim.size());
        return {};
    }
    if (rbuf_.size() >= limit)
        return asio::error::not_found;
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
