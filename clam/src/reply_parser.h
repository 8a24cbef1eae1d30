/*
 * Parsing of clamd's replies: pure functions of the reply text, no I/O, no
 * globals, so they can be unit-tested on the build machine and fuzzed.
 *
 * Everything clamd sends is untrusted: the functions accept any bytes, never
 * read past the view they are given and never use the text as a format.
 */
#ifndef AVIR_CLAM_REPLY_PARSER_H
#define AVIR_CLAM_REPLY_PARSER_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace avclam {

/* Longest reply line we accept; clamd's longest (a long virus name) is far shorter. */
constexpr std::size_t kMaxReplyLine = 1024;

enum class ScanStatus {
    Clean,      /* "stream: OK" */
    Infected,   /* "stream: <name> FOUND", name in detail */
    Impossible, /* encrypted or broken content: detail is clamd's name for it */
    OverLimit,  /* over a clamd limit: StreamMaxLength (an ERROR, clamd closes the connection
                   after it) or, with AlertExceedsMax, MaxFileSize/MaxScanSize/... (a
                   Heuristics.Limits.Exceeded.* name, in detail) */
    Failed,     /* clamd reported an ERROR for this file; detail is its text */
    Unexpected, /* not a reply to our request: detail is a printable excerpt */
};

struct ScanReply {
    ScanStatus status = ScanStatus::Unexpected;
    std::string detail;
};

/*
 * The reply to INSTREAM or FILDES number `request_id` of an IDSESSION (clamd
 * prefixes every reply in a session with "<id>: ", then "stream: " for
 * INSTREAM or "fd[<n>]: " for FILDES). `line` excludes the NUL terminator.
 */
ScanReply parse_scan_reply(std::string_view line, std::uint32_t request_id);

/*
 * True when `line` says clamd did not take a descriptor passed with FILDES:
 * over TCP or through a forwarder ("No file descriptor received", older
 * "FILDES: didn't receive file descriptor"), or a clamd without FILDES
 * ("UNKNOWN COMMAND", "Command invalid inside IDSESSION"). clamd ends the
 * session after it; INSTREAM on a fresh session still works.
 */
bool fildes_refused(std::string_view line);

/* True when `line` is "<request_id>: PONG". */
bool is_pong(std::string_view line, std::uint32_t request_id);

struct ClamdVersion {
    unsigned major = 0;
    unsigned minor = 0;
    unsigned patch = 0;
    std::string text; /* printable excerpt of the whole reply, for the log */
};

/*
 * "<request_id>: ClamAV 1.4.3/27000/Tue Nov 25 ..." (the id prefix is optional
 * when request_id is 0). Returns false when the reply is not a VERSION answer.
 */
bool parse_version(std::string_view line, std::uint32_t request_id, ClamdVersion &out);

/* At least 0.95, the first clamd with IDSESSION and INSTREAM as used here. */
bool version_supported(const ClamdVersion &v);

/* A short printable rendering of untrusted text, for error messages. */
std::string printable_excerpt(std::string_view text, std::size_t max_len = 80);

} // namespace avclam

#endif
