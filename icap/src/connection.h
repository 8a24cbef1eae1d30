/*
 * One TCP connection to an ICAP server with a deadline on every operation: a
 * private io_context runs asynchronous operations for a bounded time (the
 * "blocking client with timeouts" pattern), so a silent or stalled server can
 * never block a worker thread for longer than asked.
 *
 * Not thread-safe: one Connection is used by one thread at a time, except
 * shutdown(), which any thread may call to make pending operations fail.
 */
#ifndef AVIR_ICAP_CONNECTION_H
#define AVIR_ICAP_CONNECTION_H

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace avicap {

using Clock = std::chrono::steady_clock;
using Endpoint = boost::asio::ip::tcp::endpoint;

/* A sentence for an error of Connection's operations, in terms of the ICAP server. */
std::string describe(const boost::system::error_code &ec);

class Connection {
public:
    Connection();
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    /* Connects to the first of `endpoints` that answers within `timeout`; false with the error. */
    bool open(const std::vector<Endpoint> &endpoints, Clock::duration timeout,
              boost::system::error_code &error, bool &timed_out);
    bool is_open() const;
    void close();
    /* Makes pending and future operations fail at once; callable from any thread. */
    void shutdown();

    /* Writes all of `data`; fails when the server takes nothing for `idle`. */
    boost::system::error_code write(const std::vector<boost::asio::const_buffer> &data,
                                    Clock::duration idle);

    /* True when the server has sent something not yet read (an early answer). */
    bool has_input();

    /* Reads up to and including `delim` (at most `limit` bytes) before `deadline`. */
    boost::system::error_code read_until(std::string_view delim, std::size_t limit,
                                         Clock::time_point deadline, std::string &out);
    /* Reads exactly `n` bytes before `deadline`. */
    boost::system::error_code read_exact(std::size_t n, Clock::time_point deadline,
                                         std::string &out);
    /* Reads and drops `n` bytes before `deadline`, in bounded pieces. */
    boost::system::error_code discard(std::uint64_t n, Clock::time_point deadline);

    /* Whatever arrived and was not consumed (for error messages). */
    const std::string &pending() const { return rbuf_; }

private:
    bool run_until(const bool &done, Clock::duration idle, Clock::time_point deadline);
    void abort();
    boost::system::error_code adopt_new_socket(const Endpoint &ep);

    boost::asio::io_context io_;
    boost::asio::ip::tcp::socket socket_;
    std::string rbuf_;
    std::atomic<int> fd_{-1};
};

} // namespace avicap

#endif
