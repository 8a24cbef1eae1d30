/*
 * One TCP connection to an ICAP server with a deadline on every operation
 * (netplugin/src/deadline_socket.h), so a silent or stalled server can never
 * block a worker thread for longer than asked; the reads an ICAP response
 * needs on top.
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

#include "deadline_socket.h"

namespace avicap {

using netplugin::Clock;
using Endpoint = boost::asio::ip::tcp::endpoint;

/* A sentence for an error of Connection's operations, in terms of the ICAP server. */
std::string describe(const boost::system::error_code &ec);

class Connection : public netplugin::DeadlineSocket<boost::asio::ip::tcp> {
public:
    /* Connects to the first of `endpoints` that answers within `timeout`; false with the error. */
    bool open(const std::vector<Endpoint> &endpoints, Clock::duration timeout,
              boost::system::error_code &error, bool &timed_out);

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
};

} // namespace avicap

#endif
