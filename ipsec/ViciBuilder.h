// ViciBuilder: writes a vici message element by element, as strongSwan's
// vici_builder does, without building a tree first. Misuse (an element where
// the encoding forbids it, a bad name or value) is recorded, later calls are
// ignored, and finalize() reports the first error; finalize() also fails
// while a section or list is still open.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ipsec/ViciMessage.h"
#include "ipsec/ViciResult.h"

namespace xtap::ipsec {

class ViciBuilder {
  public:
    ViciBuilder();

    ViciBuilder& beginSection(std::string_view name);
    ViciBuilder& endSection();
    ViciBuilder& addKv(std::string_view name, std::string_view value);
    ViciBuilder& beginList(std::string_view name);
    ViciBuilder& addItem(std::string_view value);
    ViciBuilder& endList();

    ViciResult<Bytes> finalize() const;

  private:
    bool usable(std::string_view element);
    bool claimName(std::string_view name);
    void fail(ViciErrc code, std::string detail);

    Bytes out_;
    std::vector<std::unordered_set<std::string>> names_;  // per open section, root first
    bool in_list_ = false;
    std::optional<ViciError> error_;
};

}  // namespace xtap::ipsec
