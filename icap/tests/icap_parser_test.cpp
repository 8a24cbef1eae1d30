/*
 * Unit tests of the ICAP response parser, compiled for the build machine
 * (tests/test_icap_parser.py runs them): the parser is pure, so no server, no
 * Boost and no 32-bit runtime are needed. Prints one line per failure.
 */
#include <cstdio>
#include <string>

#include "../src/icap_parser.h"

#include "../../netplugin/tests/check.h"

using namespace avicap;

/* What c-icap 0.5.10's virus_scan sends for EICAR (checked against the real server). */
static const char kCicapVirus[] =
    "ICAP/1.0 200 OK\r\n"
    "Server: C-ICAP/0.5.10\r\n"
    "Connection: keep-alive\r\n"
    "ISTag: \"CI0001-UWwuEAqrC0e9RFfQwa6hrwAA\"\r\n"
    "X-Infection-Found: Type=0; Resolution=2; Threat=Kerio.Test.EICAR.UNOFFICIAL;\r\n"
    "X-Violations-Found: 1\r\n"
    "\t-\r\n"
    "\tKerio.Test.EICAR.UNOFFICIAL\r\n"
    "\t0\r\n"
    "\t0\r\n"
    "Encapsulated: res-hdr=0, res-body=161\r\n";

/* The bytes of the file "sent" in these cases, and returned whole unless a case says. */
static const std::uint64_t kSent = 30;

static ScanVerdict verdict_of(const std::string &head, const Returned &back)
{
    Response r;
    if (!parse_response_head(head, r))
        return {Verdict::Unexpected, "<not parsed>"};
    return response_verdict(r, back);
}

/* A response with an encapsulated HTTP status `http` and, when it has a body, the whole content. */
static Returned whole(const std::string &head, int http)
{
    Response r;
    bool body = parse_response_head(head, r) && r.encapsulated.has_body();
    return Returned{http, body ? static_cast<long long>(kSent) : -1, kSent};
}

static void expect_back(const std::string &head, const Returned &back, Verdict v,
                        const std::string &detail, int line)
{
    checks++;
    ScanVerdict got = verdict_of(head, back);
    if (got.verdict != v || got.detail != detail) {
        failures++;
        std::printf("FAIL line %d: verdict (%d, \"%s\"), want (%d, \"%s\")\n", line,
                    static_cast<int>(got.verdict), got.detail.c_str(), static_cast<int>(v),
                    detail.c_str());
    }
}
#define EXPECT(head, http, v, detail) expect_back(head, whole(head, http), Verdict::v, detail, __LINE__)
#define EXPECT_BACK(head, back, v, detail) expect_back(head, back, Verdict::v, detail, __LINE__)

static void heads()
{
    Response r;
    CHECK(parse_response_head(kCicapVirus, r));
    CHECK(r.status == 200 && r.reason == "OK" && !r.close);
    CHECK(r.header("x-infection-found") != nullptr);
    CHECK(r.header("X-Violations-Found") && *r.header("X-Violations-Found") ==
                                                "1\n-\nKerio.Test.EICAR.UNOFFICIAL\n0\n0");
    CHECK(r.encapsulated.res_hdr == 0 && r.encapsulated.res_body == 161);
    CHECK(r.encapsulated.header_bytes() == 161 && r.encapsulated.has_body());
    // With the terminating empty line left in, and bare LF line ends.
    CHECK(parse_response_head("ICAP/1.0 204 Unmodified\r\nISTag: x\r\n\r\n", r) && r.status == 204);
    CHECK(parse_response_head("ICAP/1.0 204 No Content\nConnection: close\n", r) && r.close);
    CHECK(parse_response_head("ICAP/1.0 100 Continue\r\n", r) && r.status == 100);
    CHECK(parse_response_head("ICAP/1.0 500\r\n", r) && r.status == 500 && r.reason.empty());
    CHECK(parse_response_head("ICAP/1.0 200 OK\r\nConnection: Keep-Alive, Close\r\n", r) && r.close);
    // Not ICAP.
    CHECK(!parse_response_head("", r));
    CHECK(!parse_response_head("HTTP/1.1 200 OK\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 2000 OK\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 20 OK\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 099 Low\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 abc OK\r\n", r));
    CHECK(!parse_response_head("icap/1.0 200 OK\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 200 OK\r\n folded first\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 200 OK\r\nno colon here\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 200 OK\r\nBad Name: x\r\n", r));
    CHECK(!parse_response_head("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=x\r\n", r));
    CHECK(!parse_response_head(std::string(kMaxHead + 1, 'A'), r));
    // Odd but legal: blanks around values, lower-case names, repeated headers.
    CHECK(parse_response_head("ICAP/1.0 200 OK\r\nx-virus-id:   Eicar-Test  \r\nX-Virus-ID: second\r\n"
                              "Encapsulated: null-body=0\r\n",
                              r));
    CHECK(*r.header("X-Virus-ID") == "Eicar-Test" && r.encapsulated.null_body == 0 &&
          !r.encapsulated.has_body() && r.encapsulated.header_bytes() == 0);
}

static void encapsulated()
{
    Encapsulated e;
    CHECK(parse_encapsulated("req-hdr=0, res-hdr=45, res-body=120", e) && e.req_hdr == 0 &&
          e.res_hdr == 45 && e.res_body == 120 && e.header_bytes() == 120);
    CHECK(parse_encapsulated("null-body=0", e) && e.header_bytes() == 0);
    CHECK(parse_encapsulated("res-hdr=0,null-body=75", e) && e.header_bytes() == 75 && !e.has_body());
    CHECK(parse_encapsulated("opt-body=0", e) && e.has_body());
    CHECK(!parse_encapsulated("", e));
    CHECK(!parse_encapsulated("res-hdr", e));
    CHECK(!parse_encapsulated("res-hdr=-1", e));
    CHECK(!parse_encapsulated("res-hdr=0, res-hdr=5, res-body=9", e));
    CHECK(!parse_encapsulated("res-body=0, null-body=0", e));
    CHECK(!parse_encapsulated("res-hdr=200, res-body=100", e));
    CHECK(!parse_encapsulated("foo-hdr=0", e));
    CHECK(!parse_encapsulated("res-hdr=99999999999999999999, res-body=1", e));
}

static void options()
{
    Response r;
    ServiceOptions o;
    CHECK(parse_response_head("ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\n"
                              "Service: C-ICAP/0.5.10 server - Antivirus service\r\n"
                              "ISTag: \"CI0001-x\"\r\nTransfer-Preview: *\r\nPreview: 1024\r\n"
                              "Allow: 204\r\nEncapsulated: null-body=0\r\n",
                              r));
    CHECK(parse_options(r, o) && o.respmod && o.reqmod && o.preview == 1024 && o.allow_204);
    CHECK(o.service == "C-ICAP/0.5.10 server - Antivirus service" && o.istag == "\"CI0001-x\"");
    CHECK(parse_response_head("ICAP/1.0 200 OK\r\nMethods: REQMOD\r\n", r));
    CHECK(parse_options(r, o) && !o.respmod && o.preview == -1 && !o.allow_204);
    CHECK(parse_response_head("ICAP/1.0 200 OK\r\nMethods: respmod\r\nPreview: 0\r\nAllow: 206, 204\r\n", r));
    CHECK(parse_options(r, o) && o.respmod && o.preview == 0 && o.allow_204);
    CHECK(parse_response_head("ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nPreview: lots\r\n", r));
    CHECK(parse_options(r, o) && o.preview == -1);
    CHECK(parse_response_head("ICAP/1.0 404 Service not found\r\n", r));
    CHECK(!parse_options(r, o));
}

static void http_and_chunks()
{
    CHECK(http_status("HTTP/1.0 403 Forbidden\r\nServer: C-ICAP\r\n\r\n") == 403);
    CHECK(http_status("HTTP/1.1 200 OK\r\n") == 200);
    CHECK(http_status("HTTP/1.1 200\r\n") == 200);
    CHECK(http_status("HTTP/1.1 2000 OK\r\n") == 0);
    CHECK(http_status("ICAP/1.0 200 OK\r\n") == 0);
    CHECK(http_status("") == 0);
    std::uint64_t n = 0;
    CHECK(parse_chunk_size("1a", n) && n == 26);
    CHECK(parse_chunk_size("0; ieof", n) && n == 0);
    CHECK(parse_chunk_size("FFFF", n) && n == 65535);
    CHECK(parse_chunk_size("10 ", n) && n == 16);
    CHECK(!parse_chunk_size("", n));
    CHECK(!parse_chunk_size("xyz", n));
    CHECK(!parse_chunk_size("-1", n));
    CHECK(!parse_chunk_size("1234567890abcdef0", n));
}

static void verdicts()
{
    // c-icap's virus_scan: 200, a replaced 403 page and the infection headers.
    EXPECT(kCicapVirus, 403, Infected, "Kerio.Test.EICAR.UNOFFICIAL");
    EXPECT("ICAP/1.0 204 Unmodified\r\n", 0, Clean, "");
    // The headers alone, each of them.
    EXPECT("ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=1; Threat=W32.Test;\r\n"
           "Encapsulated: res-hdr=0, res-body=10\r\n",
           200, Infected, "W32.Test");
    EXPECT("ICAP/1.0 200 OK\r\nX-Infection-Found: threat=Lower.Case\r\n", 200, Infected, "Lower.Case");
    EXPECT("ICAP/1.0 200 OK\r\nX-Infection-Found: Type=2; Resolution=2\r\n", 403, Infected,
           "unnamed threat (X-Infection-Found)");
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID: EICAR Test String\r\n", 403, Infected, "EICAR Test String");
    EXPECT("ICAP/1.0 200 OK\r\nX-Violations-Found: 2\r\n\tfile.com\r\n\tTrojan.Agent\r\n\t7\r\n\t2\r\n"
           "\tother.com\r\n\tSecond\r\n\t8\r\n\t2\r\n",
           200, Infected, "Trojan.Agent");
    EXPECT("ICAP/1.0 200 OK\r\nX-Violations-Found: 0\r\nEncapsulated: res-hdr=0, res-body=9\r\n",
           200, Clean, "");
    // A blocked content without a name.
    EXPECT("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=30\r\n", 403, Infected,
           "blocked by the ICAP server (HTTP 403)");
    EXPECT("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=30\r\n", 500, Infected,
           "blocked by the ICAP server (HTTP 500)");
    // Unchanged or rewritten content that is not blocked.
    EXPECT("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=30\r\n", 200, Clean, "");
    EXPECT("ICAP/1.0 200 OK\r\nEncapsulated: null-body=0\r\n", 0, Unexpected,
           "ICAP 200 without an HTTP response");
    // "Cannot tell" names.
    EXPECT("ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Heuristics.Encrypted.Zip;\r\n",
           403, Impossible, "Heuristics.Encrypted.Zip");
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID: Heuristics.Limits.Exceeded.MaxFileSize\r\n", 403,
           Impossible, "Heuristics.Limits.Exceeded.MaxFileSize");
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID: Broken.Executable\r\n", 403, Impossible, "Broken.Executable");
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID: Heuristics.Phishing.Email\r\n", 403, Infected,
           "Heuristics.Phishing.Email");
    // Server errors fail the file.
    EXPECT("ICAP/1.0 500 Server Error\r\n", 0, Failed, "ICAP 500 Server Error");
    EXPECT("ICAP/1.0 503 Service Unavailable\r\n", 0, Failed, "ICAP 503 Service Unavailable");
    EXPECT("ICAP/1.0 404 Service not found\r\n", 0, Failed, "ICAP 404 Service not found");
    EXPECT("ICAP/1.0 400 Bad request\r\n", 0, Failed, "ICAP 400 Bad request");
    EXPECT("ICAP/1.0 206 Partial Content\r\n", 200, Unexpected, "ICAP 206 Partial Content");
    EXPECT("ICAP/1.0 100 Continue\r\n", 0, Unexpected, "ICAP 100 Continue");
    // Hostile names: 7-bit printable, bounded, never a format.
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID: Caf\xc3\xa9\x01%s%n\r\n", 403, Infected, "Caf???%s%n");
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID: " + std::string(5000, 'V') + "\r\n", 403, Infected,
           std::string(kMaxVirusName, 'V'));
    EXPECT("ICAP/1.0 200 OK\r\nX-Virus-ID:    \r\n", 403, Infected, "unnamed threat (X-Virus-ID)");
}

/* An answer the plugin cannot read, or one that contradicts itself, is never Clean. */
static void never_clean()
{
    const std::string ok_content = "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=30\r\n";
    // X-Violations-Found whose count is not a number: the header says something was found.
    EXPECT(ok_content + "X-Violations-Found: abc\r\n", 200, Infected,
           "unnamed threat (unreadable X-Violations-Found: \"abc\")");
    EXPECT(ok_content + "X-Violations-Found: -1\r\n", 200, Infected,
           "unnamed threat (unreadable X-Violations-Found: \"-1\")");
    EXPECT(ok_content + "X-Violations-Found:\r\n", 200, Infected,
           "unnamed threat (unreadable X-Violations-Found: \"\")");
    EXPECT(ok_content + "X-Violations-Found: 1x\r\n\tf\r\n\tName\r\n", 200, Infected,
           "unnamed threat (unreadable X-Violations-Found: \"1x f Name\")");
    EXPECT(ok_content + "X-Violations-Found: 99999999999999\r\n", 200, Infected,
           "unnamed threat (unreadable X-Violations-Found: \"99999999999999\")");
    // 0 violations, then a violation: a contradiction.
    EXPECT(ok_content + "X-Violations-Found: 0\r\n\tf\r\n\tName\r\n\t1\r\n\t2\r\n", 200,
           Infected, "unnamed threat (unreadable X-Violations-Found: \"0 f Name 1 2\")");
    // A count without its lines.
    EXPECT(ok_content + "X-Violations-Found: 1\r\n", 200, Infected,
           "unnamed threat (X-Violations-Found)");
    // Infection headers win over any status.
    EXPECT("ICAP/1.0 204 No Content\r\nX-Infection-Found: Type=0; Resolution=2; Threat=In.204;\r\n",
           0, Infected, "In.204");
    EXPECT("ICAP/1.0 204 No Content\r\nX-Violations-Found: abc\r\n", 0, Infected,
           "unnamed threat (unreadable X-Violations-Found: \"abc\")");
    EXPECT("ICAP/1.0 500 Server Error\r\nX-Virus-ID: In.500\r\n", 0, Infected, "In.500");
    EXPECT("ICAP/1.0 403 Forbidden\r\nX-Virus-ID: In.403\r\n", 0, Infected, "In.403");
    // ICAP 403 alone: c-icap's answer to a client its acl denies, not a verdict.
    EXPECT("ICAP/1.0 403 Forbidden\r\n", 0, Failed, "ICAP 403 Forbidden");
    // 204 "no modification" that carries a content.
    EXPECT("ICAP/1.0 204 No Content\r\nEncapsulated: res-hdr=0, res-body=30\r\n", 200,
           Unexpected, "ICAP 204 (no modification) with a content");
    // An HTTP head that is not HTTP.
    EXPECT("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=30\r\n", 0, Unexpected,
           "ICAP 200 with an unreadable HTTP status line");
    // The content cut short (c-icap's virus_scan with SendPercentData, an infected file),
    // longer, or removed.
    const std::string cicap_partial = "ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\n"
                                      "Encapsulated: res-hdr=0, res-body=137\r\n";
    EXPECT_BACK(cicap_partial, (Returned{200, 159104, 3145796}), Infected,
                "content changed by the ICAP server (159104 of 3145796 bytes returned)");
    EXPECT_BACK(cicap_partial, (Returned{200, 31, 30}), Infected,
                "content changed by the ICAP server (31 of 30 bytes returned)");
    EXPECT_BACK("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=40\r\n",
                (Returned{200, -1, 30}), Infected,
                "content removed by the ICAP server (HTTP 200 without a body)");
    // The content whole: clean (c-icap's answer with SendPercentData, a clean file).
    EXPECT_BACK(cicap_partial, (Returned{200, 3145796, 3145796}), Clean, "");
    EXPECT_BACK("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=40\r\n",
                (Returned{200, -1, 0}), Clean, "");
}

static void helpers()
{
    CHECK(sanitize_name("  Name.With.Blanks  ") == "Name.With.Blanks");
    CHECK(sanitize_name("a\nb") == "a?b");
    CHECK(printable_excerpt("abc\x01\xff", 10) == "abc??");
    CHECK(printable_excerpt(std::string(100, 'x'), 10) == std::string(10, 'x') + "...");
    CHECK(url_escape("eicar.com") == "eicar.com");
    CHECK(url_escape("a b/\xc3\xa9%") == "a%20b%2F%C3%A9%25");
    CHECK(url_escape(std::string(500, 'a')).size() <= 200);
    CHECK(is_impossible_name("Encrypted.RAR") && !is_impossible_name("Eicar"));
}

int main()
{
    heads();
    encapsulated();
    options();
    http_and_chunks();
    verdicts();
    never_clean();
    helpers();
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
