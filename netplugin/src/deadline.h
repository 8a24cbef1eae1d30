/*
 * The clock every timeout of the plugins is measured on: steady, so that an
 * administrator setting the system time never cuts a scan short or stretches it.
 */
#ifndef NETPLUGIN_DEADLINE_H
#define NETPLUGIN_DEADLINE_H

#include <chrono>

namespace netplugin {

using Clock = std::chrono::steady_clock;

/* What remains until `deadline`: zero once it has passed, never negative, so that
   a wait given it ends at once instead of misbehaving. */
inline Clock::duration time_left(Clock::time_point deadline)
{
    Clock::time_point now = Clock::now();
    return deadline > now ? deadline - now : Clock::duration::zero();
}

} // namespace netplugin

#endif
