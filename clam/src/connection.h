/*
 * One stream connection to clamd (TCP or UNIX socket) with a deadline on
 * every operation (netplugin/src/deadline_socket.h), so a silent or stalled
 * clamd can never block a worker thread for longer than asked; clamd's
 * z-commands, FILDES and INSTREAM exchanges on top.
 *
 * Not thread-safe: one Connection is used by one thread at a time, except
 * shutdown(), which any thread may call to make pending operations fail.
 */
#ifndef AVIR_CLAM_CONNECTION_H
#define AVIR_CLAM_CONNECTION_H

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include "config.h"
#include "deadline_socket.h"

namespace avclam {

using netplugin::Clock;

/*
 * A sentence for an error of Connection's operations, in terms of clamd
 * (Asio's own texts, such as "Element not found" for an over-long reply,
 * mean nothing to an administrator).
 */
std::string describe(const boost::system::error_code &ec);

/*
 * Fills config.endpoints: the UNIX socket, or every address of Address:Port,
 * within `timeout`. False with a sentence in `error` when that fails.
 */
bool resolve_endpoints(Config &config, Clock::duration timeout, std::string &error);

class Connection : public netplugin::DeadlineSocket<boost::asio::generic::stream_protocol> {
public:
    /*
     * Connects to the first of config.endpoints that answers, within `timeout`;
     * on failure returns false and a sentence saying what failed and what to check.
     */
    bool open(const Config &config, Clock::duration timeout, std::string &error);
    /* After a failed open(): retrying cannot help (no permission, not a socket...). */
    bool failed_for_good() const { return permanent_failure_; }
    /* After a failed open(): why, in a few words ("connection refused", "no folder"). */
    const std::string &failure_brief() const { return failure_brief_; }
    /*
     * Sends `command` (`len` bytes), then one byte carrying `fd` as SCM_RIGHTS
     * ancillary data (UNIX socket only): clamd's FILDES wants the descriptor in
     * a message of its own after the command's. Fails when the socket takes
     * nothing for `idle`, or at `deadline`.
     */
    boost::system::error_code send_with_descriptor(const char *command, std::size_t len, int fd,
                                                   Clock::duration idle,
                                                   Clock::time_point deadline);

    /*
     * Reads one NUL-terminated reply (without the NUL) within `timeout` in all
     * and before `deadline`, however clamd paces its bytes. On error, `line`
     * holds what arrived before it (clamd sends a few messages
     * newline-terminated and hangs up).
     */
    boost::system::error_code read_reply(std::string &line, Clock::duration timeout,
                                         Clock::time_point deadline = Clock::time_point::max());

    /*
     * Fills `out` with the next write and sets `last` when it is the final one;
     * returns false (after setting `error`) when it cannot produce the data.
     */
    using Producer = std::function<bool(std::vector<boost::asio::const_buffer> &out, bool &last,
                                        std::string &error)>;

    struct Exchange {
        boost::system::error_code read_error;  /* set when no complete reply arrived */
        boost::system::error_code write_error; /* set when a write failed */
        bool producer_failed = false;          /* the Producer gave up; see its error */
        bool replied_early = false;            /* the reply came before everything was sent */
        bool timed_out = false;
        bool upload_finished = false; /* every write was done (or failed) */
        std::string reply;
    };

    /*
     * Sends what `next` produces while waiting for one reply, so that a reply
     * clamd sends early (a size limit) stops the upload instead of a broken
     * pipe. `timeout` bounds two phases differently. While uploading, it bounds
     * the time clamd may take no byte of the upload (bytes of a reply that
     * clamd sends meanwhile are not progress of the upload). Once the upload
     * has ended, it bounds the whole wait for the complete reply: a clamd that
     * sends a byte now and then must not hold the worker for ever. `deadline`
     * (the scan's) ends both phases, however clamd paces what it takes.
     */
    Exchange exchange(const Producer &next, std::string &producer_error, Clock::duration timeout,
                      Clock::time_point deadline = Clock::time_point::max());

private:
    struct ExchangeState;

    std::string connect_error(const Config &config, bool timed_out,
                              const boost::system::error_code &last);
    void take_line(std::size_t n, std::string &line);
    boost::system::error_code send_message(::msghdr &msg, Clock::duration idle,
                                           Clock::time_point deadline);
    void quick_ack();
    /* The parts of exchange(). */
    void start_reply_read(ExchangeState &s);
    void write_next(ExchangeState &s);
    void write_rest(ExchangeState &s);
    bool run_exchange(ExchangeState &s, Clock::duration timeout, Clock::time_point deadline);

    bool tcp_ = false;
    bool permanent_failure_ = false;
    std::string failure_brief_;
};

} // namespace avclam

#endif
