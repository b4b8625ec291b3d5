// vici messages (strongSwan src/libcharon/plugins/vici/README.md, platform.md
// §8): a tree of sections holding key/values, lists of values and
// sub-sections, encoded as a flat sequence of typed elements. Pure codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ipsec/ViciResult.h"

namespace xtap::ipsec {

using Bytes = std::vector<uint8_t>;

enum class ElementType : uint8_t {
    SectionStart = 1,  // name
    SectionEnd = 2,
    KeyValue = 3,   // name, value
    ListStart = 4,  // name
    ListItem = 5,   // value
    ListEnd = 6,
};

inline constexpr size_t kMaxNameLength = 255;     // 8-bit length prefix
inline constexpr size_t kMaxValueLength = 65535;  // 16-bit length prefix
// strongSwan allows any depth; charon's own messages stay under 8. The cap
// bounds recursion on hostile input.
inline constexpr size_t kMaxSectionDepth = 64;

using Value = std::string;  // raw bytes; charon sends text (numbers as decimal, yes/no)
using List = std::vector<Value>;

struct Entry;

// An ordered map: entries keep their wire order (it matters for some
// messages, e.g. several auth rounds) and names must be unique, which
// encodeMessage() and decodeMessage() enforce.
struct Section {
    std::vector<Entry> entries;

    Section& addValue(std::string name, Value value);
    Section& addList(std::string name, List items);
    // Returns the new child, valid until this section gets another entry.
    Section& addSection(std::string name);

    const Entry* find(std::string_view name) const;
    const Value* value(std::string_view name) const;  // null if absent or not a value
    const List* list(std::string_view name) const;
    const Section* section(std::string_view name) const;

    bool operator==(const Section& other) const;
};

struct Entry {
    std::string name;
    std::variant<Value, List, Section> element;

    bool operator==(const Entry&) const = default;
};

// Element and packet names: 1 to 255 bytes of printable ASCII (strongSwan
// checks printability; xtap also refuses empty names).
bool isValidName(std::string_view name);

// Fails on invalid names, duplicate names in a section, values above
// 65535 bytes, or nesting deeper than kMaxSectionDepth.
ViciResult<Bytes> encodeMessage(const Section& root);

// Strict: every element complete, sections balanced, lists closed and holding
// items only (no list inside a list), unique names, known element types.
ViciResult<Section> decodeMessage(std::span<const uint8_t> bytes);

}  // namespace xtap::ipsec
