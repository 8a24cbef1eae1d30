#include "discovery.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace avclam {

/*
 * The stock clamd sockets, then the stock TCP address. /var/run is a link to
 * /run on current systems; both spellings are listed for older ones.
 *   Debian/Ubuntu, package clamav-daemon: /etc/clamav/clamd.conf has
 *     LocalSocket /var/run/clamav/clamd.ctl and no TCPSocket.
 *   RHEL/CentOS/Fedora (EPEL), package clamd: /etc/clamd.d/scan.conf,
 *     LocalSocket /run/clamd.scan/clamd.sock once uncommented.
 */
const Candidate kCandidates[] = {
    {"/var/run/clamav/clamd.ctl", nullptr, nullptr, "Debian/Ubuntu clamav-daemon"},
    {"/run/clamav/clamd.ctl", nullptr, nullptr, "Debian/Ubuntu clamav-daemon"},
    {"/run/clamd.scan/clamd.sock", nullptr, nullptr, "RHEL/CentOS/Fedora clamd@scan"},
    {"/var/run/clamd.scan/clamd.sock", nullptr, nullptr, "RHEL/CentOS/Fedora clamd@scan"},
    {nullptr, kDefaultAddress, kDefaultPort, "clamd's TCPSocket default"},
};
const std::size_t kCandidateCount = sizeof kCandidates / sizeof kCandidates[0];

std::vector<Candidate> default_candidates()
{
    return std::vector<Candidate>(kCandidates, kCandidates + kCandidateCount);
}

std::string candidate_where(const Candidate &c)
{
    if (c.local_socket)
        return c.local_socket;
    return std::string(c.address) + ":" + c.port;
}

bool discovery_wanted(const std::string &address, long port, const std::string &local_socket)
{
    return local_socket.empty() && address == kDefaultAddress && std::to_string(port) == kDefaultPort;
}

namespace {

/* One pass: the index of the first candidate that answered, else -1. */
int discover_round(const std::vector<Candidate> &candidates, const ProbeFn &probe,
                   Discovery &d)
{
    for (std::size_t i = 0; i < candidates.size(); i++) {
        if (d.outcomes[i].result == ProbeResult::Permanent)
            continue;
        d.outcomes[i] = probe(candidates[i]);
        if (d.outcomes[i].result == ProbeResult::Answered)
            return static_cast<int>(i);
    }
    return -1;
}

bool any_permanent(const Discovery &d)
{
    for (const auto &o : d.outcomes)
        if (o.result == ProbeResult::Permanent)
            return true;
    return false;
}

} // namespace

Discovery discover(const std::vector<Candidate> &candidates, const ProbeFn &probe,
                   const WaitFn &wait_more)
{
    Discovery d;
    d.outcomes.assign(candidates.size(), ProbeOutcome{});
    if (candidates.empty())
        return d;
    for (;;) {
        d.rounds++;
        d.chosen = discover_round(candidates, probe, d);
        if (d.chosen >= 0)
            return d;
        if (any_permanent(d)) {
            d.gave_up_for_good = true;
            return d;
        }
        if (!wait_more())
            return d;
    }
}

std::string discovery_summary(const std::vector<Candidate> &candidates, const Discovery &d)
{
    std::string out;
    for (std::size_t i = 0; i < candidates.size() && i < d.outcomes.size(); i++) {
        if (!out.empty())
            out += "; ";
        out += candidate_where(candidates[i]) + ": " + d.outcomes[i].detail;
    }
    return out;
}

namespace {

std::string folder_of(const std::string &path)
{
    std::string::size_type slash = path.find_last_of('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string octal_mode(unsigned mode)
{
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
    return buf;
}

std::string permission_hint(const std::string &path, const PathInfo &info, const Identity &self)
{
    std::string text = "permission denied: this process runs as user " + self.user +
                       ", group " + self.group + ", and may not open " + path;
    if (info.state == PathState::Socket || info.state == PathState::NotSocket)
        text += " (owner " + info.owner + ", group " + info.group + ", mode " +
                octal_mode(info.mode) + ")";
    else
        text += " (a folder on the way to it is not accessible to that user)";
    std::string group = info.group.empty() ? std::string("clamd's socket group") : info.group;
    text += "; add that user to the group " + group +
            " (and restart the product), or set LocalSocketGroup and LocalSocketMode "
            "(e.g. 660) in clamd.conf so that it may";
    return text;
}

SocketDiagnosis transient(const std::string &why)
{
    return {false, why + "; is clamav-daemon running with this LocalSocket?", why};
}

} // namespace

SocketDiagnosis diagnose_socket_error(int err, const std::string &path, const PathInfo &info,
                                      const Identity &self, bool configured)
{
    if (err == EACCES || err == EPERM)
        return {true, permission_hint(path, info, self), "permission denied"};
    if (info.state == PathState::NotSocket || err == ENOTSOCK || err == EPROTOTYPE)
        return {true,
                path + " is not a socket: not clamd's socket; set LocalSocket to the "
                       "LocalSocket path of clamd.conf",
                "not a socket"};
    if (err == ENOTDIR || err == ELOOP || err == ENAMETOOLONG)
        return {true,
                std::string(std::strerror(err)) + ": not clamd's socket; set LocalSocket to the "
                                                  "LocalSocket path of clamd.conf",
                std::strerror(err)};
    if (info.state == PathState::DirMissing) {
        std::string why = "the folder " + folder_of(path) + " does not exist";
        if (configured)
            return {true,
                    why + ": is clamd installed, and is LocalSocket the LocalSocket path of "
                          "clamd.conf?",
                    "no folder"};
        return {false, why + " (clamd not installed or not started)", "no folder"};
    }
    if (err == ENOENT)
        return transient("no such socket");
    if (err == ECONNREFUSED)
        return transient("connection refused");
    return transient(std::strerror(err));
}

namespace {

std::string user_name(uid_t uid)
{
    struct passwd pw, *found = nullptr;
    char buf[1024];
    std::string id = "uid " + std::to_string(uid);
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found)
        return std::string(found->pw_name) + " (" + id + ")";
    return id;
}

std::string group_name(gid_t gid)
{
    struct group gr, *found = nullptr;
    char buf[1024];
    std::string id = "gid " + std::to_string(gid);
    if (getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found)
        return std::string(found->gr_name) + " (" + id + ")";
    return id;
}

} // namespace

PathInfo inspect_path(const std::string &path)
{
    PathInfo info;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
        info.state = S_ISSOCK(st.st_mode) ? PathState::Socket : PathState::NotSocket;
        info.owner = user_name(st.st_uid);
        info.group = group_name(st.st_gid);
        info.mode = static_cast<unsigned>(st.st_mode);
        return info;
    }
    if (errno != ENOENT)
        return info; /* Unknown: EACCES on a folder on the way, ENOTDIR... */
    struct stat dir;
    int found = ::stat(folder_of(path).c_str(), &dir);
    if (found == 0 && S_ISDIR(dir.st_mode))
        info.state = PathState::Missing;
    else if (found != 0 && errno == ENOENT)
        info.state = PathState::DirMissing;
    return info;
}

Identity current_identity()
{
    return {user_name(::geteuid()), group_name(::getegid())};
}

} // namespace avclam
