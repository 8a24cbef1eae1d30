/*
 * Unit tests of clamd discovery and of the diagnosis of failed UNIX socket
 * connections (clam/src/discovery.cpp), compiled for the build machine by
 * tests/test_clam_parser.py: the selection is a pure function of the candidate
 * table and of a probe passed in, so no clamd is needed. Prints one line per
 * failure.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../src/discovery.h"

#include "../../netplugin/tests/check.h"

using namespace avclam;

static bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

static void when_discovery_applies()
{
    CHECK(discovery_wanted("127.0.0.1", 3310, ""));
    // Anything the administrator changed is used as before.
    CHECK(!discovery_wanted("127.0.0.1", 3310, "/run/clamav/clamd.ctl"));
    CHECK(!discovery_wanted("127.0.0.1", 3311, ""));
    CHECK(!discovery_wanted("localhost", 3310, ""));
    CHECK(!discovery_wanted("::1", 3310, ""));
    CHECK(!discovery_wanted("10.0.0.5", 3310, ""));
}

static void the_table()
{
    std::vector<Candidate> c = default_candidates();
    CHECK(c.size() == kCandidateCount);
    CHECK(c.size() == 5);
    CHECK(candidate_where(c[0]) == "/var/run/clamav/clamd.ctl");
    CHECK(candidate_where(c[1]) == "/run/clamav/clamd.ctl");
    CHECK(candidate_where(c[2]) == "/run/clamd.scan/clamd.sock");
    CHECK(candidate_where(c[3]) == "/var/run/clamd.scan/clamd.sock");
    CHECK(candidate_where(c.back()) == "127.0.0.1:3310"); // TCP comes last
    for (const auto &x : c)
        CHECK(x.origin && *x.origin);
}

/* A scripted probe: per place, the outcomes of successive rounds (the last repeats). */
struct Script {
    std::map<std::string, std::vector<ProbeResult>> plan;
    std::vector<std::string> calls;

    ProbeOutcome operator()(const Candidate &c)
    {
        std::string where = candidate_where(c);
        int round = 0;
        for (const auto &call : calls)
            round += call == where;
        calls.push_back(where);
        auto it = plan.find(where);
        if (it == plan.end())
            return {ProbeResult::Transient, "nothing there"};
        const auto &steps = it->second;
        ProbeResult r = steps[std::min<std::size_t>(round, steps.size() - 1)];
        return {r, r == ProbeResult::Answered    ? "answered PING"
                   : r == ProbeResult::Permanent ? "permission denied"
                                                 : "connection refused"};
    }
};

static Discovery run(Script &s, int max_rounds)
{
    int waits = 0;
    return discover(
        default_candidates(), [&](const Candidate &c) { return s(c); },
        [&] { return ++waits < max_rounds; });
}

static void selection()
{
    { // the first stock socket that answers wins, the later ones are not tried
        Script s;
        s.plan["/run/clamav/clamd.ctl"] = {ProbeResult::Answered};
        s.plan["127.0.0.1:3310"] = {ProbeResult::Answered};
        Discovery d = run(s, 10);
        CHECK(d.chosen == 1);
        CHECK(d.rounds == 1);
        CHECK(s.calls.size() == 2);
    }
    { // RHEL's socket
        Script s;
        s.plan["/var/run/clamd.scan/clamd.sock"] = {ProbeResult::Answered};
        Discovery d = run(s, 10);
        CHECK(d.chosen == 3);
    }
    { // only TCP answers: the sockets are tried first, in order
        Script s;
        s.plan["127.0.0.1:3310"] = {ProbeResult::Answered};
        Discovery d = run(s, 10);
        CHECK(d.chosen == 4);
        CHECK(s.calls.size() == 5 && s.calls[0] == "/var/run/clamav/clamd.ctl");
    }
    { // clamd still starting: its socket answers in the third round
        Script s;
        s.plan["/run/clamav/clamd.ctl"] = {ProbeResult::Transient, ProbeResult::Transient,
                                           ProbeResult::Answered};
        Discovery d = run(s, 10);
        CHECK(d.chosen == 1);
        CHECK(d.rounds == 3);
    }
    { // a permanent failure is passed over when a later place answers in the same round
        Script s;
        s.plan["/var/run/clamav/clamd.ctl"] = {ProbeResult::Permanent};
        s.plan["127.0.0.1:3310"] = {ProbeResult::Answered};
        Discovery d = run(s, 10);
        CHECK(d.chosen == 4);
        CHECK(d.rounds == 1);
        CHECK(!d.gave_up_for_good);
        CHECK(d.outcomes[0].result == ProbeResult::Permanent);
    }
    { // a permanent failure and nothing answering: no waiting (the socket there is clamd's)
        Script s;
        s.plan["/run/clamav/clamd.ctl"] = {ProbeResult::Permanent};
        s.plan["127.0.0.1:3310"] = {ProbeResult::Transient, ProbeResult::Answered};
        int waits = 0;
        Discovery d = discover(
            default_candidates(), [&](const Candidate &c) { return s(c); },
            [&] { return ++waits < 10; });
        CHECK(d.chosen == -1 && d.rounds == 1 && waits == 0);
        CHECK(d.gave_up_for_good);
        std::string summary = discovery_summary(default_candidates(), d);
        CHECK(contains(summary, "/run/clamav/clamd.ctl: permission denied"));
        CHECK(contains(summary, "127.0.0.1:3310: connection refused"));
    }
    { // nothing answers: gives up when the time is up, and says what each place did
        Script s;
        Discovery d = run(s, 3);
        CHECK(d.chosen == -1);
        CHECK(d.rounds == 3);
        CHECK(!d.gave_up_for_good);
        std::string summary = discovery_summary(default_candidates(), d);
        CHECK(contains(summary, "/run/clamav/clamd.ctl: nothing there"));
        CHECK(contains(summary, "127.0.0.1:3310: nothing there"));
    }
    { // every place failed for good: no waiting
        std::vector<Candidate> one{kCandidates[0]};
        int waits = 0;
        Discovery d = discover(
            one, [](const Candidate &) { return ProbeOutcome{ProbeResult::Permanent, "x"}; },
            [&] { return ++waits < 100; });
        CHECK(d.chosen == -1 && d.rounds == 1 && waits == 0);
    }
}

static PathInfo info(PathState state)
{
    PathInfo i;
    i.state = state;
    i.owner = "clamav (uid 101)";
    i.group = "clamav (gid 102)";
    i.mode = 0140660;
    return i;
}

static void diagnosis()
{
    Identity me{"kerio (uid 999)", "kerio (gid 999)"};
    const std::string path = "/run/clamav/clamd.ctl";

    SocketDiagnosis d = diagnose_socket_error(EACCES, path, info(PathState::Socket), me, true);
    CHECK(d.permanent);
    CHECK(contains(d.text, "permission denied"));
    CHECK(contains(d.text, "kerio (uid 999)"));
    CHECK(contains(d.text, "mode 0660"));
    CHECK(contains(d.text, "group clamav (gid 102)"));
    CHECK(contains(d.text, "LocalSocketGroup") && contains(d.text, "LocalSocketMode"));
    CHECK(diagnose_socket_error(EPERM, path, info(PathState::Socket), me, false).permanent);
    d = diagnose_socket_error(EACCES, path, info(PathState::Unknown), me, true);
    CHECK(d.permanent && contains(d.text, "folder on the way"));

    // Linux says ECONNREFUSED for a regular file: what is there decides.
    d = diagnose_socket_error(ECONNREFUSED, path, info(PathState::NotSocket), me, true);
    CHECK(d.permanent && contains(d.text, "not a socket") && contains(d.text, "not clamd's socket"));
    CHECK(diagnose_socket_error(ENOTSOCK, path, info(PathState::Unknown), me, true).permanent);
    CHECK(diagnose_socket_error(ENOTDIR, path, info(PathState::Unknown), me, true).permanent);
    CHECK(diagnose_socket_error(EPROTOTYPE, path, info(PathState::Socket), me, true).permanent);

    // A stale socket, or none yet while its folder exists: clamd may be starting.
    d = diagnose_socket_error(ECONNREFUSED, path, info(PathState::Socket), me, true);
    CHECK(!d.permanent && contains(d.text, "is clamav-daemon running with this LocalSocket?"));
    d = diagnose_socket_error(ENOENT, path, info(PathState::Missing), me, true);
    CHECK(!d.permanent && contains(d.text, "LocalSocket"));

    // No folder: a wrong LocalSocket when configured, not started yet for a stock path.
    d = diagnose_socket_error(ENOENT, path, info(PathState::DirMissing), me, true);
    CHECK(d.permanent && contains(d.text, "/run/clamav does not exist") && d.brief == "no folder");
    d = diagnose_socket_error(ENOENT, path, info(PathState::DirMissing), me, false);
    CHECK(!d.permanent);
}

static void inspecting_paths()
{
    char dir[] = "/tmp/avclam-discovery-XXXXXX";
    if (!mkdtemp(dir)) {
        std::printf("FAIL mkdtemp: %s\n", std::strerror(errno));
        failures++;
        return;
    }
    const std::string base = dir;
    CHECK(inspect_path(base + "/absent.sock").state == PathState::Missing);
    CHECK(inspect_path(base + "/no/absent.sock").state == PathState::DirMissing);
    const std::string file = base + "/file";
    std::FILE *f = std::fopen(file.c_str(), "w");
    CHECK(f != nullptr);
    if (f)
        std::fclose(f);
    PathInfo i = inspect_path(file);
    CHECK(i.state == PathState::NotSocket);
    CHECK(!i.owner.empty() && !i.group.empty());

    const std::string sock = base + "/s.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    CHECK(fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
    ::chmod(sock.c_str(), 0600);
    i = inspect_path(sock);
    CHECK(i.state == PathState::Socket);
    CHECK((i.mode & 0777) == 0600);
    if (fd >= 0)
        ::close(fd);

    Identity me = current_identity();
    CHECK(contains(me.user, "uid ") && contains(me.group, "gid "));

    ::unlink(sock.c_str());
    ::unlink(file.c_str());
    ::rmdir(dir);
}

int main()
{
    when_discovery_applies();
    the_table();
    selection();
    diagnosis();
    inspecting_paths();
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
