#include "ipsec/ViciBuilder.h"

namespace xtap::ipsec {

namespace {

void put(Bytes& out, ElementType type) {
    out.push_back(static_cast<uint8_t>(type));
}

void putName(Bytes& out, std::string_view name) {
    out.push_back(static_cast<uint8_t>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
}

void putValue(Bytes& out, std::string_view value) {
    out.push_back(static_cast<uint8_t>(value.size() >> 8));
    out.push_back(static_cast<uint8_t>(value.size()));
    out.insert(out.end(), value.begin(), value.end());
}

}  // namespace

ViciBuilder::ViciBuilder() {
    names_.emplace_back();
}

void ViciBuilder::fail(ViciErrc code, std::string detail) {
    if (!error_) {
        error_ = viciError(code, std::move(detail));
    }
}

// Elements other than items and LIST_END may not appear inside a list.
bool ViciBuilder::usable(std::string_view element) {
    if (error_) {
        return false;
    }
    if (in_list_) {
        fail(ViciErrc::NotAllowedInList, std::string(element));
        return false;
    }
    return true;
}

bool ViciBuilder::claimName(std::string_view name) {
    if (!isValidName(name)) {
        fail(ViciErrc::InvalidName, "'" + std::string(name) + "'");
        return false;
    }
    if (!names_.back().emplace(name).second) {
        fail(ViciErrc::DuplicateKey, "'" + std::string(name) + "'");
        return false;
    }
    return true;
}

ViciBuilder& ViciBuilder::beginSection(std::string_view name) {
    if (!usable("SECTION_START") || !claimName(name)) {
        return *this;
    }
    if (names_.size() > kMaxSectionDepth) {
        fail(ViciErrc::TooDeep, "'" + std::string(name) + "'");
        return *this;
    }
    put(out_, ElementType::SectionStart);
    putName(out_, name);
    names_.emplace_back();
    return *this;
}

ViciBuilder& ViciBuilder::endSection() {
    if (!usable("SECTION_END")) {
        return *this;
    }
    if (names_.size() == 1) {
        fail(ViciErrc::UnbalancedSection, "SECTION_END at the root");
        return *this;
    }
    put(out_, ElementType::SectionEnd);
    names_.pop_back();
    return *this;
}

ViciBuilder& ViciBuilder::addKv(std::string_view name, std::string_view value) {
    if (!usable("KEY_VALUE") || !claimName(name)) {
        return *this;
    }
    if (value.size() > kMaxValueLength) {
        fail(ViciErrc::ValueTooLong, "'" + std::string(name) + "'");
        return *this;
    }
    put(out_, ElementType::KeyValue);
    putName(out_, name);
    putValue(out_, value);
    return *this;
}

ViciBuilder& ViciBuilder::beginList(std::string_view name) {
    if (!usable("LIST_START") || !claimName(name)) {
        return *this;
    }
    put(out_, ElementType::ListStart);
    putName(out_, name);
    in_list_ = true;
    return *this;
}

ViciBuilder& ViciBuilder::addItem(std::string_view value) {
    if (error_) {
        return *this;
    }
    if (!in_list_) {
        fail(ViciErrc::OutsideList, "LIST_ITEM");
        return *this;
    }
    if (value.size() > kMaxValueLength) {
        fail(ViciErrc::ValueTooLong, "list item");
        return *this;
    }
    put(out_, ElementType::ListItem);
    putValue(out_, value);
    return *this;
}

ViciBuilder& ViciBuilder::endList() {
    if (error_) {
        return *this;
    }
    if (!in_list_) {
        fail(ViciErrc::OutsideList, "LIST_END");
        return *this;
    }
    put(out_, ElementType::ListEnd);
    in_list_ = false;
    return *this;
}

ViciResult<Bytes> ViciBuilder::finalize() const {
    if (error_) {
        return *error_;
    }
    if (in_list_) {
        return viciError(ViciErrc::UnterminatedList, "list still open");
    }
    if (names_.size() > 1) {
        return viciError(ViciErrc::UnbalancedSection,
                         std::to_string(names_.size() - 1) + " section(s) still open");
    }
    return out_;
}

}  // namespace xtap::ipsec
