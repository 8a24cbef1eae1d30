#include "limits_probe.h"

#include <cstdint>

namespace avclam {

namespace {

std::uint32_t crc32(const std::vector<unsigned char> &data)
{
    std::uint32_t crc = 0xffffffffu;
    for (unsigned char b : data) {
        crc ^= b;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void put16(std::vector<unsigned char> &out, std::uint32_t v)
{
    out.push_back(static_cast<unsigned char>(v));
    out.push_back(static_cast<unsigned char>(v >> 8));
}

void put32(std::vector<unsigned char> &out, std::uint32_t v)
{
    put16(out, v & 0xffffu);
    put16(out, v >> 16);
}

/* One stored member named "a" holding `inner`: local header, data, central directory, end. */
std::vector<unsigned char> wrap(const std::vector<unsigned char> &inner)
{
    const std::uint32_t crc = crc32(inner);
    const auto size = static_cast<std::uint32_t>(inner.size());
    const std::uint32_t dos_date = 0x21; /* 1980-01-01 */
    std::vector<unsigned char> out;
    put32(out, 0x04034b50u);
    put16(out, 20); /* version needed */
    put16(out, 0);  /* flags */
    put16(out, 0);  /* stored */
    put16(out, 0);
    put16(out, dos_date);
    put32(out, crc);
    put32(out, size);
    put32(out, size);
    put16(out, 1); /* name length */
    put16(out, 0); /* extra length */
    out.push_back('a');
    out.insert(out.end(), inner.begin(), inner.end());
    const auto central = static_cast<std::uint32_t>(out.size());
    put32(out, 0x02014b50u);
    put16(out, 20); /* made by */
    put16(out, 20); /* version needed */
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, dos_date);
    put32(out, crc);
    put32(out, size);
    put32(out, size);
    put16(out, 1);
    put16(out, 0); /* extra */
    put16(out, 0); /* comment */
    put16(out, 0); /* disk */
    put16(out, 0); /* internal attributes */
    put32(out, 0); /* external attributes */
    put32(out, 0); /* offset of the local header */
    out.push_back('a');
    const auto central_size = static_cast<std::uint32_t>(out.size()) - central;
    put32(out, 0x06054b50u);
    put16(out, 0);
    put16(out, 0);
    put16(out, 1);
    put16(out, 1);
    put32(out, central_size);
    put32(out, central);
    put16(out, 0);
    return out;
}

} // namespace

std::vector<unsigned char> nested_zip(int depth)
{
    std::vector<unsigned char> data{'x'};
    for (int i = 0; i < depth; i++)
        data = wrap(data);
    return data;
}

} // namespace avclam
