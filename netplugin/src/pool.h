/*
 * A pool of scanning servers: an option read as a list of instances, and the
 * health every worker context shares. Both plugins keep the same rules, so an
 * administrator writes a pool the same way for clamd (Address, LocalSocket)
 * and for ICAP (Server). Pure logic (no sockets, time passed in), so that it
 * is unit-tested on its own.
 *
 * Syntax: entries separated by commas (spaces around them are ignored).
 * An address entry is "host", "host:port", "[v6]" or "[v6]:port"; a bare
 * IPv6 literal ("::1") is a host without a port. The plugin's port option
 * applies to the entries that have none. A LocalSocket entry is a socket path.
 *
 * Health: an instance that failed (refused, timed out, dropped a scan) is
 * skipped by the next scans and probed at most once every kProbeEvery until it
 * answers (avir_clam: by its keep-alive thread; avir_icap, which has no thread,
 * by the next scan). A pool of one is never skipped: it behaves as a single
 * address always did.
 */
#ifndef NETPLUGIN_POOL_H
#define NETPLUGIN_POOL_H

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace netplugin {

struct Endpoint {
    std::string host; /* without brackets */
    std::string port; /* empty: the Port option */
};

/* The non-empty entries of a comma-separated list, trimmed. */
std::vector<std::string> split_list(const std::string &text);

/* One Address entry; false when it is malformed (an unclosed bracket, a bad port). */
bool parse_endpoint(const std::string &entry, Endpoint &out);

constexpr std::chrono::milliseconds kProbeEvery{1000};

class Health {
public:
    using Clock = std::chrono::steady_clock;

    explicit Health(std::size_t instances)
        : state_(instances) {}
    std::size_t size() const { return state_.size(); }

    /*
     * The instances a scan may use, in the order to try them: the healthy
     * ones, starting at the next turn of the round robin. Empty when every
     * instance of a pool is down; a pool of one always gives {0}.
     */
    std::vector<std::size_t> candidates();

    /* Instance `i` failed at `now` for `why`: skipped until it answers a probe.
       True when it was healthy until now (worth a line in the log). */
    bool failed(std::size_t i, Clock::time_point now, const std::string &why);
    /* Instance `i` answered a probe: used again. True when it was down. */
    bool answered(std::size_t i);

    /* The down instances whose probe is due at `now`; their next probe moves kProbeEvery on. */
    std::vector<std::size_t> due_for_probe(Clock::time_point now);

    bool is_down(std::size_t i) const;
    /* Why instance `i` is down ("" when it is not). */
    std::string why(std::size_t i) const;

private:
    struct State {
        bool down = false;
        Clock::time_point next_probe{};
        std::string why;
    };
    mutable std::mutex mutex_;
    std::vector<State> state_;
    std::size_t turn_ = 0;
};

} // namespace netplugin

#endif
