/*
 * netplugin::scan_deadline: the bound the READMEs state for a whole scan,
 * ConnectTimeout + ScanTimeout x (3 + ceil(size / 1 MiB)).
 */
#include "deadline.h"

#include "check.h"

using netplugin::Clock;
using std::chrono::seconds;

static Clock::duration bound(seconds connect, seconds scan, std::uint64_t size)
{
    const Clock::time_point start{};
    return netplugin::scan_deadline(start, connect, scan, size) - start;
}

int main()
{
    const std::uint64_t mib = 1024 * 1024;
    CHECK(bound(seconds(10), seconds(120), 0) == seconds(10 + 3 * 120));
    CHECK(bound(seconds(10), seconds(120), 1) == seconds(10 + 4 * 120));
    CHECK(bound(seconds(10), seconds(120), mib) == seconds(10 + 4 * 120));
    CHECK(bound(seconds(10), seconds(120), mib + 1) == seconds(10 + 5 * 120));
    CHECK(bound(seconds(90), seconds(120), 25 * mib) == seconds(90 + 28 * 120));
    /* Absurd sizes do not overflow the clock: still in the future, and capped. */
    const Clock::duration huge = bound(seconds(60), seconds(3600), ~std::uint64_t{0});
    CHECK(huge > seconds(0));
    CHECK(huge == seconds(60 + 3600 * (3 + (1u << 20))));

    const Clock::time_point a = Clock::now(), b = a + seconds(1);
    CHECK(netplugin::earlier(a, b) == a && netplugin::earlier(b, a) == a);
    CHECK(netplugin::time_left(a - seconds(1)) == Clock::duration::zero());

    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
