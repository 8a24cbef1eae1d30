/*
 * Where clamd is when the administrator did not say: the stock places of the
 * distributions' clamd packages, tried in order (one table, kCandidates), and
 * what a failed connection to a UNIX socket means (permanent or worth waiting
 * for, with a hint for the administrator).
 *
 * No Boost and no plugin API here: the selection and the diagnosis are pure
 * functions of their inputs, unit-tested on the build machine
 * (clam/tests/discovery_test.cpp); the probing itself is passed in.
 */
#ifndef AVIR_CLAM_DISCOVERY_H
#define AVIR_CLAM_DISCOVERY_H

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace avclam {

/* The option defaults that mean "no address set" (see discovery_wanted); the
   option table (config.cpp) and the candidate table use these same strings. */
constexpr char kDefaultAddress[] = "127.0.0.1";
constexpr char kDefaultPort[] = "3310";

struct Candidate {
    const char *local_socket; /* a UNIX socket path, or nullptr for TCP address:port */
    const char *address;      /* TCP only */
    const char *port;         /* TCP only */
    const char *origin;       /* whose default it is, for the log */
};

/* The places tried, in order: the first that answers PING is used. */
extern const Candidate kCandidates[];
extern const std::size_t kCandidateCount;
std::vector<Candidate> default_candidates();

/* "/run/clamav/clamd.ctl" or "127.0.0.1:3310". */
std::string candidate_where(const Candidate &c);

/*
 * True when the administrator set no address at all: LocalSocket is empty,
 * Address is exactly 127.0.0.1 and Port is 3310 (the defaults, as stored,
 * trimmed). Any other Address or Port, or any LocalSocket, is used as before.
 */
bool discovery_wanted(const std::string &address, long port, const std::string &local_socket);

enum class ProbeResult {
    Answered,  /* clamd answered PING there */
    Transient, /* nothing there now; it may appear (clamd starting) */
    Permanent, /* something there that will not work by waiting (permission, not a socket) */
};

struct ProbeOutcome {
    ProbeResult result = ProbeResult::Transient;
    std::string detail; /* why, for the log and the error */
};

struct Discovery {
    int chosen = -1;                    /* index into the candidates, -1 when none answered */
    std::vector<ProbeOutcome> outcomes; /* the last outcome of each candidate */
    int rounds = 0;
    /* Ended because a place failed permanently (a socket there, unusable): waiting
       would not help, since that is most likely the clamd meant. */
    bool gave_up_for_good = false;
};

using ProbeFn = std::function<ProbeOutcome(const Candidate &)>;
/* Called between rounds; false when time is up (it may sleep before answering). */
using WaitFn = std::function<bool()>;

/*
 * Probes the candidates in order, round after round, until one answers (the
 * first that does in a round wins), a round ends with none answering and one
 * failed permanently (a socket of clamd this process may not use: waiting
 * would not help, and the administrator should know at once), or `wait_more`
 * says time is up.
 */
Discovery discover(const std::vector<Candidate> &candidates, const ProbeFn &probe,
                   const WaitFn &wait_more);

/* What a failed discovery tried, as one sentence: "PATH: why; ...; 127.0.0.1:3310: why". */
std::string discovery_summary(const std::vector<Candidate> &candidates, const Discovery &d);

/* --- failed connections to a UNIX socket --- */

enum class PathState {
    Socket,     /* a socket is there */
    NotSocket,  /* something else is there (a file, a folder...) */
    Missing,    /* nothing there, its folder exists */
    DirMissing, /* its folder does not exist either */
    Unknown,    /* cannot tell (a folder on the way is not searchable) */
};

struct PathInfo {
    PathState state = PathState::Unknown;
    std::string owner; /* the socket's (or the file's) owner and group, when known */
    std::string group;
    unsigned mode = 0; /* permission bits, when known */
};

/* The process, as a permission hint names it. */
struct Identity {
    std::string user;  /* "kerio (uid 999)" */
    std::string group; /* "kerio (gid 999)" */
};

struct SocketDiagnosis {
    bool permanent = false;
    std::string text;  /* "permission denied: ...; add ..." */
    std::string brief; /* "permission denied", for a list of places tried */
};

/*
 * What connect(2)'s `err` on the socket `path` means, given what is at that
 * path. `configured`: the administrator set the path (LocalSocket), so a
 * missing folder is a wrong path; for a stock path it only means clamd has
 * not started (yet).
 */
SocketDiagnosis diagnose_socket_error(int err, const std::string &path, const PathInfo &info,
                                      const Identity &self, bool configured);

/* stat(2) of `path` and its folder; owner and group by name where the system knows them. */
PathInfo inspect_path(const std::string &path);
/* The effective user and group of this process. */
Identity current_identity();

} // namespace avclam

#endif
