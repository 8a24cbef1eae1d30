/*
 * The clock every timeout of the plugins is measured on: steady, so that an
 * administrator setting the system time never cuts a scan short or stretches it.
 */
#ifndef NETPLUGIN_DEADLINE_H
#define NETPLUGIN_DEADLINE_H

#include <chrono>
#include <cstdint>

namespace netplugin {

using Clock = std::chrono::steady_clock;

/* What remains until `deadline`: zero once it has passed, never negative, so that
   a wait given it ends at once instead of misbehaving. */
inline Clock::duration time_left(Clock::time_point deadline)
{
    Clock::time_point now = Clock::now();
    return deadline > now ? deadline - now : Clock::duration::zero();
}

/* The earlier of two deadlines. */
inline Clock::time_point earlier(Clock::time_point a, Clock::time_point b)
{
    return a < b ? a : b;
}

/* How much of a file an upload may take per ScanTimeout on average. */
constexpr std::uint64_t kBytesPerScanTimeout = 1024 * 1024;

/*
 * When a whole scan of a file of `size` bytes must have ended, retries and a
 * pool's other servers included, whatever the server does:
 * connect + scan x (3 + ceil(size / 1 MiB)). That is one connect, an upload
 * taking at least 1 MiB per ScanTimeout, the wait for the verdict, and one
 * ScanTimeout more for a retry on a fresh connection or another server.
 * The READMEs state this formula: keep them in step.
 */
inline Clock::time_point scan_deadline(Clock::time_point start, Clock::duration connect,
                                       Clock::duration scan, std::uint64_t size)
{
    std::uint64_t mib = size / kBytesPerScanTimeout + (size % kBytesPerScanTimeout != 0);
    if (mib > (1u << 20)) /* no overflow of the clock for absurd sizes: weeks anyway */
        mib = 1u << 20;
    return start + connect + scan * static_cast<Clock::rep>(3 + mib);
}

} // namespace netplugin

#endif
