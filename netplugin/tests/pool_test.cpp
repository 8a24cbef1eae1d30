/*
 * Unit tests of the pool's pure logic (netplugin/src/pool.cpp): the list syntax of
 * Address and LocalSocket, and the health every worker shares. Compiled for
 * the build machine by tests/test_clam_parser.py.
 */
#include <atomic>
#include <cstdio>
#include <thread>

#include "../src/pool.h"

#include "check.h"

using namespace netplugin;
using Clock = Health::Clock;

static void lists()
{
    CHECK(split_list("127.0.0.1").size() == 1);
    auto l = split_list(" a:1 ,b ,, c:3 ");
    CHECK(l.size() == 3 && l[0] == "a:1" && l[1] == "b" && l[2] == "c:3");
    CHECK(split_list(" , ").empty());
    CHECK(split_list("").empty());
}

static void endpoints()
{
    Endpoint e;
    CHECK(parse_endpoint("clamd.example", e) && e.host == "clamd.example" && e.port.empty());
    CHECK(parse_endpoint("10.0.0.2:3311", e) && e.host == "10.0.0.2" && e.port == "3311");
    CHECK(parse_endpoint("[::1]:3312", e) && e.host == "::1" && e.port == "3312");
    CHECK(parse_endpoint("[::1]", e) && e.host == "::1" && e.port.empty());
    CHECK(parse_endpoint("::1", e) && e.host == "::1" && e.port.empty()); /* bare IPv6 */
    CHECK(parse_endpoint("fe80::1:2", e) && e.host == "fe80::1:2" && e.port.empty());
    e = Endpoint{"kept", "1"};
    CHECK(!parse_endpoint("", e));
    CHECK(!parse_endpoint("host:", e));
    CHECK(!parse_endpoint(":3310", e));
    CHECK(!parse_endpoint("host:0", e));
    CHECK(!parse_endpoint("host:65536", e));
    CHECK(!parse_endpoint("host:33x", e));
    CHECK(!parse_endpoint("[::1", e));
    CHECK(!parse_endpoint("[]:3310", e));
    CHECK(!parse_endpoint("[::1]3310", e));
    CHECK(!parse_endpoint("a b:3310", e));
    CHECK(e.host == "kept" && e.port == "1"); /* untouched on failure */
}

static void round_robin()
{
    Health h(3);
    auto a = h.candidates(), b = h.candidates(), c = h.candidates(), d = h.candidates();
    CHECK(a.size() == 3 && a[0] == 0 && a[1] == 1 && a[2] == 2);
    CHECK(b[0] == 1 && b[1] == 2 && b[2] == 0);
    CHECK(c[0] == 2);
    CHECK(d[0] == 0);
}

static void skipping_and_probing()
{
    Health h(2);
    const Clock::time_point t0 = Clock::now();
    CHECK(h.failed(0, t0, "connection refused"));  /* newly down */
    CHECK(!h.failed(0, t0, "connection refused")); /* already down: not logged twice */
    CHECK(h.is_down(0) && h.why(0) == "connection refused");
    for (int k = 0; k < 4; k++) {
        auto c = h.candidates();
        CHECK(c.size() == 1 && c[0] == 1); /* every scan skips it */
    }
    CHECK(h.due_for_probe(t0).empty()); /* not within the second */
    CHECK(h.due_for_probe(t0 + kProbeEvery / 2).empty());
    auto due = h.due_for_probe(t0 + kProbeEvery);
    CHECK(due.size() == 1 && due[0] == 0);
    CHECK(h.due_for_probe(t0 + kProbeEvery).empty()); /* the next one a second later */
    CHECK(h.due_for_probe(t0 + 2 * kProbeEvery).size() == 1);
    CHECK(h.answered(0)); /* it answered a probe */
    CHECK(!h.answered(0));
    CHECK(!h.is_down(0) && h.why(0).empty());
    CHECK(h.candidates().size() == 2);
    CHECK(h.due_for_probe(t0 + 10 * kProbeEvery).empty());
}

static void all_down()
{
    Health h(2);
    const Clock::time_point t0 = Clock::now();
    h.failed(0, t0, "a");
    h.failed(1, t0, "b");
    CHECK(h.candidates().empty());
    CHECK(h.due_for_probe(t0 + kProbeEvery).size() == 2);
}

static void single_instance_is_never_skipped()
{
    Health h(1);
    CHECK(!h.failed(0, Clock::now(), "refused"));
    CHECK(!h.is_down(0));
    auto c = h.candidates();
    CHECK(c.size() == 1 && c[0] == 0);
    CHECK(h.due_for_probe(Clock::now() + 10 * kProbeEvery).empty());
}

static void threads()
{
    /* Many workers taking turns and reporting failures at once (run under TSan/ASan by
       hand; here it must at least stay consistent). */
    Health h(4);
    std::atomic<int> picked{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 8; w++)
        workers.emplace_back([&h, &picked, w] {
            for (int k = 0; k < 2000; k++) {
                auto c = h.candidates();
                picked += static_cast<int>(c.size());
                if (k % 100 == 0)
                    h.failed(static_cast<std::size_t>(w % 4), Clock::now(), "x");
                if (k % 150 == 0)
                    h.answered(static_cast<std::size_t>(w % 4));
            }
        });
    for (auto &t : workers)
        t.join();
    CHECK(picked.load() > 0);
    for (std::size_t i = 0; i < 4; i++)
        h.answered(i);
    CHECK(h.candidates().size() == 4);
}

int main()
{
    lists();
    endpoints();
    round_robin();
    skipping_and_probing();
    all_down();
    single_instance_is_never_skipped();
    threads();
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
