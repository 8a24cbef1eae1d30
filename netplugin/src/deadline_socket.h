/*
 * A stream socket whose every operation has a deadline: a private io_context
 * runs asynchronous operations for a bounded time (the "blocking client with
 * timeouts" pattern), so a silent or stalled server can never block a worker
 * thread for longer than asked. Each plugin's Connection adds its protocol's
 * reads and writes on top; `Protocol` is Asio's (ip::tcp, or
 * generic::stream_protocol for TCP and UNIX sockets alike).
 *
 * Not thread-safe: one object is used by one thread at a time, except
 * shutdown(), which any thread may call to make pending operations fail.
 */
#ifndef NETPLUGIN_DEADLINE_SOCKET_H
#define NETPLUGIN_DEADLINE_SOCKET_H

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>

#include "deadline.h"

namespace netplugin {

template <typename Protocol>
class DeadlineSocket {
public:
    using Endpoint = typename Protocol::endpoint;

    DeadlineSocket()
        : socket_(io_) {}
    ~DeadlineSocket() { close(); }
    DeadlineSocket(const DeadlineSocket &) = delete;
    DeadlineSocket &operator=(const DeadlineSocket &) = delete;

    bool is_open() const { return socket_.is_open(); }

    void close()
    {
        fd_.store(-1);
        boost::system::error_code ignored;
        socket_.close(ignored);
        rbuf_.clear();
    }

    /* Makes pending and future operations fail at once; callable from any thread. */
    void shutdown()
    {
        int fd = fd_.load();
        if (fd >= 0)
            ::shutdown(fd, SHUT_RDWR);
    }

    /* Writes all of `data` as one gather write; fails when the server takes
       nothing for `idle`, or when `deadline` passes however it takes it. */
    boost::system::error_code write(const std::vector<boost::asio::const_buffer> &data,
                                    Clock::duration idle,
                                    Clock::time_point deadline = Clock::time_point::max())
    {
        bool done = false;
        boost::system::error_code ec;
        boost::asio::async_write(socket_, data, [&](const boost::system::error_code &e, std::size_t) {
            ec = e;
            done = true;
        });
        if (!run_until(done, idle, deadline))
            return boost::asio::error::timed_out;
        return ec;
    }

protected:
    /*
     * Creates the socket for `ep` and makes it socket_. Asio's socket_.open()
     * calls socket() without SOCK_CLOEXEC: the product forks helpers at any
     * moment, and a descriptor a child inherits keeps the server's connection
     * half-open there. So it is created close-on-exec, then adopted.
     */
    boost::system::error_code adopt_new_socket(const Endpoint &ep)
    {
        int fd = ::socket(ep.protocol().family(), ep.protocol().type() | SOCK_CLOEXEC,
                          ep.protocol().protocol());
        if (fd < 0)
            return boost::system::error_code(errno, boost::asio::error::get_system_category());
        boost::system::error_code ec;
        socket_.assign(ep.protocol(), fd, ec);
        if (ec) {
            ::close(fd);
            return ec;
        }
        fd_.store(socket_.native_handle());
        return ec;
    }

    /* False when `idle` or `deadline` ran out; else `ec` is the connect's outcome. */
    bool connect_to(const Endpoint &ep, Clock::duration idle, Clock::time_point deadline,
                    boost::system::error_code &ec)
    {
        bool done = false;
        socket_.async_connect(ep, [&](const boost::system::error_code &e) {
            ec = e;
            done = true;
        });
        return run_until(done, idle, deadline);
    }

    /*
     * Runs handlers until `done`. Fails (and cancels everything) when no handler
     * ran for `idle` or the absolute `deadline` passed: each completed step counts
     * as progress, so only silence is punished.
     */
    bool run_until(const bool &done, Clock::duration idle, Clock::time_point deadline)
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
    void abort()
    {
        close();
        io_.restart();
        io_.run();
        io_.restart();
    }

    boost::asio::io_context io_;
    typename Protocol::socket socket_;
    std::string rbuf_;        /* read but not yet consumed */
    std::atomic<int> fd_{-1}; /* for shutdown() from another thread */
};

} // namespace netplugin

#endif
