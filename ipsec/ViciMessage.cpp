#include "ipsec/ViciMessage.h"

#include <algorithm>
#include <unordered_set>

#include "ipsec/ViciBuilder.h"

namespace xtap::ipsec {

Section& Section::addValue(std::string name, Value value) {
    entries.push_back(Entry{std::move(name), std::move(value)});
    return *this;
}

Section& Section::addList(std::string name, List items) {
    entries.push_back(Entry{std::move(name), std::move(items)});
    return *this;
}

Section& Section::addSection(std::string name) {
    entries.push_back(Entry{std::move(name), Section{}});
    return std::get<Section>(entries.back().element);
}

const Entry* Section::find(std::string_view name) const {
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const Entry& e) { return e.name == name; });
    return it == entries.end() ? nullptr : &*it;
}

const Value* Section::value(std::string_view name) const {
    const Entry* e = find(name);
    return e ? std::get_if<Value>(&e->element) : nullptr;
}

const List* Section::list(std::string_view name) const {
    const Entry* e = find(name);
    return e ? std::get_if<List>(&e->element) : nullptr;
}

const Section* Section::section(std::string_view name) const {
    const Entry* e = find(name);
    return e ? std::get_if<Section>(&e->element) : nullptr;
}

bool Section::operator==(const Section& other) const {
    return entries == other.entries;
}

bool isValidName(std::string_view name) {
    return !name.empty() && name.size() <= kMaxNameLength &&
           std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

namespace {

// Walks the tree through the builder, the one writer of the wire format.
// Past the depth cap the builder has failed already: stop descending.
void encodeSection(const Section& section, size_t depth, ViciBuilder& builder) {
    if (depth > kMaxSectionDepth) {
        return;
    }
    for (const Entry& entry : section.entries) {
        if (const Value* value = std::get_if<Value>(&entry.element)) {
            builder.addKv(entry.name, *value);
        } else if (const List* list = std::get_if<List>(&entry.element)) {
            builder.beginList(entry.name);
            for (const Value& item : *list) {
                builder.addItem(item);
            }
            builder.endList();
        } else {
            builder.beginSection(entry.name);
            encodeSection(std::get<Section>(entry.element), depth + 1, builder);
            builder.endSection();
        }
    }
}

// Bounds-checked cursor over the encoded message.
class Reader {
  public:
    explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

    bool done() const { return pos_ == bytes_.size(); }
    size_t position() const { return pos_; }
    uint8_t byte() { return bytes_[pos_++]; }

    bool read(size_t size, std::string_view& out) {
        if (bytes_.size() - pos_ < size) {
            return false;
        }
        out = std::string_view(reinterpret_cast<const char*>(bytes_.data() + pos_), size);
        pos_ += size;
        return true;
    }
    bool readName(std::string_view& out) {
        if (done()) {
            return false;
        }
        return read(byte(), out);
    }
    bool readValue(std::string_view& out) {
        if (bytes_.size() - pos_ < 2) {
            return false;
        }
        const size_t size = static_cast<size_t>(bytes_[pos_] << 8 | bytes_[pos_ + 1]);
        pos_ += 2;
        return read(size, out);
    }

  private:
    std::span<const uint8_t> bytes_;
    size_t pos_ = 0;
};

ViciError errorAt(ViciErrc code, size_t offset, std::string_view what) {
    return viciError(code, "offset " + std::to_string(offset) + ": " + std::string(what));
}

}  // namespace

ViciResult<Bytes> encodeMessage(const Section& root) {
    ViciBuilder builder;
    encodeSection(root, 0, builder);
    return builder.finalize();
}

ViciResult<Section> decodeMessage(std::span<const uint8_t> bytes) {
    struct Open {
        Section* section;
        std::unordered_set<std::string_view> names;  // views into `bytes`
    };
    Section root;
    std::vector<Open> open;
    open.push_back(Open{&root, {}});
    List* list = nullptr;  // the open list, if any, inside open.back()

    Reader reader(bytes);
    while (!reader.done()) {
        const size_t at = reader.position();
        const uint8_t type = reader.byte();
        std::string_view name;
        std::string_view value;

        const bool named = type == static_cast<uint8_t>(ElementType::SectionStart) ||
                           type == static_cast<uint8_t>(ElementType::KeyValue) ||
                           type == static_cast<uint8_t>(ElementType::ListStart);
        if (list && named) {
            return errorAt(ViciErrc::NotAllowedInList, at, "element type " + std::to_string(type));
        }
        if (named) {
            if (!reader.readName(name)) {
                return errorAt(ViciErrc::Truncated, at, "name");
            }
            if (!isValidName(name)) {
                return errorAt(ViciErrc::InvalidName, at, "'" + std::string(name) + "'");
            }
            if (!open.back().names.insert(name).second) {
                return errorAt(ViciErrc::DuplicateKey, at, "'" + std::string(name) + "'");
            }
        }

        switch (static_cast<ElementType>(type)) {
            case ElementType::SectionStart:
                if (open.size() > kMaxSectionDepth) {
                    return errorAt(ViciErrc::TooDeep, at, "'" + std::string(name) + "'");
                }
                open.push_back(Open{&open.back().section->addSection(std::string(name)), {}});
                break;
            case ElementType::SectionEnd:
                if (list) {
                    return errorAt(ViciErrc::NotAllowedInList, at, "SECTION_END");
                }
                if (open.size() == 1) {
                    return errorAt(ViciErrc::UnbalancedSection, at, "SECTION_END at the root");
                }
                open.pop_back();
                break;
            case ElementType::KeyValue:
                if (!reader.readValue(value)) {
                    return errorAt(ViciErrc::Truncated, at, "value of '" + std::string(name) + "'");
                }
                open.back().section->addValue(std::string(name), Value(value));
                break;
            case ElementType::ListStart:
                open.back().section->addList(std::string(name), {});
                list = &std::get<List>(open.back().section->entries.back().element);
                break;
            case ElementType::ListItem:
                if (!list) {
                    return errorAt(ViciErrc::OutsideList, at, "LIST_ITEM");
                }
                if (!reader.readValue(value)) {
                    return errorAt(ViciErrc::Truncated, at, "list item");
                }
                list->emplace_back(value);
                break;
            case ElementType::ListEnd:
                if (!list) {
                    return errorAt(ViciErrc::OutsideList, at, "LIST_END");
                }
                list = nullptr;
                break;
            default:
                return errorAt(ViciErrc::UnknownElementType, at, std::to_string(type));
        }
    }
    if (list) {
        return viciError(ViciErrc::UnterminatedList, "at end of message");
    }
    if (open.size() > 1) {
        return viciError(ViciErrc::UnbalancedSection,
                         std::to_string(open.size() - 1) + " section(s) left open");
    }
    return root;
}

}  // namespace xtap::ipsec
