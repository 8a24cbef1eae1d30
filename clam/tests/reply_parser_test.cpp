/*
 * Unit tests of the clamd reply parser, compiled for the build machine
 * (tests/test_clam_parser.py runs them): the parser is pure, so no clamd,
 * no Boost and no 32-bit runtime are needed. Prints one line per failure.
 */
#include <cstdio>
#include <string>

#include "../src/reply_parser.h"

#include "../../netplugin/tests/check.h"

using namespace avclam;

static void expect(const std::string &line, std::uint32_t id, ScanStatus status,
                   const std::string &detail, int source_line)
{
    checks++;
    ScanReply r = parse_scan_reply(line, id);
    if (r.status != status || r.detail != detail) {
        failures++;
        std::printf("FAIL line %d: parse_scan_reply(\"%s\", %u) = (%d, \"%s\"), want (%d, \"%s\")\n",
                    source_line, printable_excerpt(line, 200).c_str(), id,
                    static_cast<int>(r.status), r.detail.c_str(), static_cast<int>(status),
                    detail.c_str());
    }
}
#define EXPECT(line, id, status, detail) expect(line, id, ScanStatus::status, detail, __LINE__)

static void scan_replies()
{
    EXPECT("1: stream: OK", 1, Clean, "");
    EXPECT(std::string("7: stream: OK\0", 14), 7, Clean, "");
    EXPECT("12: stream: OK\n", 12, Clean, "");
    EXPECT("3: stream: Kerio.Test.EICAR.UNOFFICIAL FOUND", 3, Infected, "Kerio.Test.EICAR.UNOFFICIAL");
    EXPECT("3: stream: Win.Test.EICAR_HDB-1 FOUND", 3, Infected, "Win.Test.EICAR_HDB-1");
    // The ABI's "cannot tell" names.
    EXPECT("2: stream: Heuristics.Encrypted.Zip FOUND", 2, Impossible, "Heuristics.Encrypted.Zip");
    EXPECT("2: stream: Heuristics.Encrypted.PDF FOUND", 2, Impossible, "Heuristics.Encrypted.PDF");
    EXPECT("2: stream: Encrypted.RAR FOUND", 2, Impossible, "Encrypted.RAR");
    EXPECT("2: stream: Broken.Executable FOUND", 2, Impossible, "Broken.Executable");
    // Only those prefixes: other heuristics are viruses.
    EXPECT("2: stream: Heuristics.Phishing.Email FOUND", 2, Infected, "Heuristics.Phishing.Email");
    EXPECT("2: stream: Heuristics.Broken.Media FOUND", 2, Infected, "Heuristics.Broken.Media");
    // Errors are not viruses; the size limit is "cannot tell".
    EXPECT("1: INSTREAM size limit exceeded. ERROR", 1, OverLimit, "INSTREAM size limit exceeded.");
    EXPECT("4: stream: Can't allocate memory ERROR", 4, Failed, "Can't allocate memory");
    EXPECT("4: Error processing command. ERROR", 4, Failed, "Error processing command.");
    // Wrong, missing or garbled request ids: never someone else's verdict.
    EXPECT("2: stream: OK", 1, Unexpected, "2: stream: OK");
    EXPECT("stream: OK", 1, Unexpected, "stream: OK");
    EXPECT("1:stream: OK", 1, Unexpected, "1:stream: OK");
    EXPECT("4294967297: stream: OK", 1, Unexpected, "4294967297: stream: OK");
    EXPECT("99999999999999999999: stream: OK", 1, Unexpected, "99999999999999999999: stream: OK");
    EXPECT("COMMAND READ TIMED OUT\n", 1, Unexpected, "COMMAND READ TIMED OUT");
    EXPECT("1: UNKNOWN COMMAND", 1, Unexpected, "1: UNKNOWN COMMAND");
    EXPECT("", 1, Unexpected, "");
    EXPECT("1: ", 1, Unexpected, "1: ");
    EXPECT("1: stream: ", 1, Unexpected, "1: stream: ");
    EXPECT("1: stream:  FOUND", 1, Unexpected, "1: stream:  FOUND");
    EXPECT("1: stream: FOUND", 1, Unexpected, "1: stream: FOUND");
    EXPECT("1:  ERROR", 1, Unexpected, "1:  ERROR");
    EXPECT("1: stream: OK trailing", 1, Unexpected, "1: stream: OK trailing");
    EXPECT("1: stream: two words FOUND", 1, Unexpected, "1: stream: two words FOUND");
    // Control and 8-bit bytes: rejected as names, rendered as '?' in excerpts.
    EXPECT(std::string("1: stream: Bad\x01Name FOUND"), 1, Unexpected, "1: stream: Bad?Name FOUND");
    EXPECT("1: stream: Caf\xc3\xa9 FOUND", 1, Unexpected, "1: stream: Caf?? FOUND");
    EXPECT(std::string("1: stream: O\0K", 14), 1, Unexpected, "1: stream: O?K");
    // Overlong lines are refused, and excerpts stay short.
    std::string longname(kMaxReplyLine, 'A');
    ScanReply r = parse_scan_reply("1: stream: " + longname + " FOUND", 1);
    CHECK(r.status == ScanStatus::Unexpected);
    CHECK(r.detail.size() <= 83);
    r = parse_scan_reply("1: stream: " + std::string(200, 'B') + " FOUND", 1);
    CHECK(r.status == ScanStatus::Infected && r.detail == std::string(200, 'B'));
    // printf directives are plain text.
    EXPECT("1: stream: %s%n%x FOUND", 1, Infected, "%s%n%x");
}

/* FILDES replies name the descriptor clamd received instead of "stream". */
static void fildes_replies()
{
    EXPECT("1: fd[11]: OK", 1, Clean, "");
    EXPECT("3: fd[7]: Kerio.Test.EICAR.UNOFFICIAL FOUND", 3, Infected, "Kerio.Test.EICAR.UNOFFICIAL");
    EXPECT("2: fd[12]: Heuristics.Encrypted.Zip FOUND", 2, Impossible, "Heuristics.Encrypted.Zip");
    EXPECT("2: fd[12]: Can't allocate memory ERROR", 2, Failed, "Can't allocate memory");
    EXPECT("1: fd[]: OK", 1, Unexpected, "1: fd[]: OK");
    EXPECT("1: fd[x]: OK", 1, Unexpected, "1: fd[x]: OK");
    EXPECT("1: fd[11] OK", 1, Unexpected, "1: fd[11] OK");
    EXPECT("1: fd[11]:OK", 1, Unexpected, "1: fd[11]:OK");
    EXPECT("1: fd[12345678901]: OK", 1, Unexpected, "1: fd[12345678901]: OK");
    EXPECT("1: fd[11]: ", 1, Unexpected, "1: fd[11]: ");
    EXPECT("1: fd[", 1, Unexpected, "1: fd[");
    EXPECT("2: fd[11]: OK", 1, Unexpected, "2: fd[11]: OK");
    // An unnamed body is never a verdict: only errors may come without a name.
    EXPECT("1: OK", 1, Unexpected, "1: OK");
    EXPECT("1: Kerio.Test.EICAR.UNOFFICIAL FOUND", 1, Unexpected,
           "1: Kerio.Test.EICAR.UNOFFICIAL FOUND");
}

/* With AlertExceedsMax clamd names the limit it stopped at: never clean, never a virus. */
static void limit_heuristics()
{
    EXPECT("2: fd[11]: Heuristics.Limits.Exceeded.MaxFileSize FOUND", 2, OverLimit,
           "Heuristics.Limits.Exceeded.MaxFileSize");
    EXPECT("2: stream: Heuristics.Limits.Exceeded.MaxScanSize FOUND", 2, OverLimit,
           "Heuristics.Limits.Exceeded.MaxScanSize");
    EXPECT("2: fd[11]: Heuristics.Limits.Exceeded.MaxRecursion FOUND", 2, OverLimit,
           "Heuristics.Limits.Exceeded.MaxRecursion");
    EXPECT("2: fd[11]: Heuristics.Limits.Exceeded FOUND", 2, OverLimit, "Heuristics.Limits.Exceeded");
    // Other heuristics stay detections.
    EXPECT("2: fd[11]: Heuristics.Limits FOUND", 2, Infected, "Heuristics.Limits");
}

static void fildes_refusals()
{
    CHECK(fildes_refused("1: No file descriptor received. ERROR"));
    CHECK(fildes_refused(std::string("1: No file descriptor received. ERROR\0", 38)));
    CHECK(fildes_refused("1: FILDES: didn't receive file descriptor. ERROR"));
    CHECK(fildes_refused("UNKNOWN COMMAND\n"));
    CHECK(fildes_refused("1: Command invalid inside IDSESSION. ERROR"));
    CHECK(!fildes_refused("1: fd[11]: OK"));
    CHECK(!fildes_refused("1: fd[11]: Kerio.Test.EICAR.UNOFFICIAL FOUND"));
    CHECK(!fildes_refused("1: fd[11]: Not a regular file ERROR"));
    CHECK(!fildes_refused("1: INSTREAM size limit exceeded. ERROR"));
    CHECK(!fildes_refused(""));
    CHECK(!fildes_refused(std::string(kMaxReplyLine + 10, 'x') + "UNKNOWN COMMAND"));
}

static void pongs()
{
    CHECK(is_pong("1: PONG", 1));
    CHECK(is_pong(std::string("5: PONG\0", 8), 5));
    CHECK(!is_pong("PONG", 1));
    CHECK(!is_pong("2: PONG", 1));
    CHECK(!is_pong("1: PONGX", 1));
    CHECK(!is_pong("1: pong", 1));
    CHECK(!is_pong("", 1));
}

static void versions()
{
    ClamdVersion v;
    CHECK(parse_version("2: ClamAV 1.4.3", 2, v) && v.major == 1 && v.minor == 4 && v.patch == 3);
    CHECK(version_supported(v));
    CHECK(v.text == "ClamAV 1.4.3");
    CHECK(parse_version("ClamAV 0.103.8/26903/Mon May  1 07:24:49 2023", 0, v) && v.major == 0 &&
          v.minor == 103 && v.patch == 8 && version_supported(v));
    CHECK(parse_version("1: ClamAV 0.95", 1, v) && v.minor == 95 && v.patch == 0 &&
          version_supported(v));
    CHECK(parse_version("1: ClamAV 0.94.2", 1, v) && !version_supported(v));
    CHECK(parse_version("1: ClamAV 0.88.7", 1, v) && !version_supported(v));
    CHECK(!parse_version("1: ClamAV", 1, v));
    CHECK(!parse_version("1: ClamAV devel-20090101", 1, v));
    CHECK(!parse_version("1: ClamAV 1", 1, v));
    CHECK(!parse_version("2: ClamAV 1.4.3", 1, v));
    CHECK(!parse_version("1: OtherAV 1.4.3", 1, v));
    CHECK(!parse_version("1: ClamAV 9999999999.1", 1, v) || v.major <= 999999);
    CHECK(!parse_version("1: ClamAV " + std::string(2000, '1'), 1, v));
}

static void excerpts()
{
    CHECK(printable_excerpt("abc") == "abc");
    CHECK(printable_excerpt("a\tb\x7f\xff") == "a?b??");
    CHECK(printable_excerpt(std::string(100, 'x'), 10) == std::string(10, 'x') + "...");
    CHECK(printable_excerpt("line\n") == "line");
}

int main()
{
    scan_replies();
    fildes_replies();
    limit_heuristics();
    fildes_refusals();
    pongs();
    versions();
    excerpts();
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
