#include "ipsec/ViciCommands.h"

#include <charconv>

namespace xtap::ipsec {

namespace {

void addIfSet(Section& section, const char* key, const std::string& value) {
    if (!value.empty()) {
        section.addValue(key, value);
    }
}

void addIfSet(Section& section, const char* key, const std::vector<std::string>& items) {
    if (!items.empty()) {
        section.addList(key, items);
    }
}

template <class Int>
void addIfSet(Section& section, const char* key, const std::optional<Int>& number) {
    if (number) {
        section.addValue(key, std::to_string(*number));
    }
}

void addAuth(Section& conn, const char* round, const AuthConfig& auth) {
    if (auth.auth.empty() && auth.id.empty()) {
        return;
    }
    Section& section = conn.addSection(round);
    addIfSet(section, "auth", auth.auth);
    addIfSet(section, "id", auth.id);
}

ViciResult<Packet> request(std::string_view name, const Section& message) {
    auto bytes = encodeMessage(message);
    if (!bytes) {
        return bytes.error();
    }
    return Packet{PacketType::CmdRequest, std::string(name), std::move(bytes).value()};
}

std::string typeName(PacketType type) {
    return "packet type " + std::to_string(static_cast<unsigned>(type));
}

// Reads `key` into `out` when present; a list or section there is an error.
ViciResult<void> readString(const Section& section, std::string_view key, std::string& out) {
    const Entry* entry = section.find(key);
    if (!entry) {
        return {};
    }
    const Value* value = std::get_if<Value>(&entry->element);
    if (!value) {
        return viciError(ViciErrc::InvalidValue, "'" + std::string(key) + "' is not a value");
    }
    out = *value;
    return {};
}

ViciResult<void> readRequiredString(const Section& section, std::string_view key,
                                    std::string& out) {
    if (!section.find(key)) {
        return viciError(ViciErrc::MissingKey, "'" + std::string(key) + "'");
    }
    return readString(section, key, out);
}

ViciResult<void> readNumber(const Section& section, std::string_view key, uint64_t& out) {
    std::string text;
    if (auto read = readString(section, key, text); !read || text.empty()) {
        return read;
    }
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return viciError(ViciErrc::InvalidValue, "'" + std::string(key) + "' = '" + text + "'");
    }
    return {};
}

ViciResult<void> readStrings(const Section& section, std::string_view key,
                             std::vector<std::string>& out) {
    const Entry* entry = section.find(key);
    if (!entry) {
        return {};
    }
    const List* list = std::get_if<List>(&entry->element);
    if (!list) {
        return viciError(ViciErrc::InvalidValue, "'" + std::string(key) + "' is not a list");
    }
    out = *list;
    return {};
}

ViciResult<ChildSaInfo> readChildSa(const std::string& key, const Section& section) {
    ChildSaInfo child;
    child.key = key;
    std::string encap;
    // Charon names the section "<name>-<uniqueid>"; the config name is inside.
    // Every read runs (a braced list evaluates left to right); the first
    // failure is the one reported.
    for (auto read :
         {readRequiredString(section, "name", child.name),
          readString(section, "uniqueid", child.unique_id),
          readString(section, "state", child.state), readString(section, "mode", child.mode),
          readString(section, "encap", encap), readNumber(section, "bytes-in", child.bytes_in),
          readNumber(section, "bytes-out", child.bytes_out),
          readNumber(section, "packets-in", child.packets_in),
          readNumber(section, "packets-out", child.packets_out),
          readStrings(section, "local-ts", child.local_ts),
          readStrings(section, "remote-ts", child.remote_ts)}) {
        if (!read) {
            return viciError(read.error().code, "CHILD_SA '" + key + "': " + read.error().detail);
        }
    }
    child.encap = encap == "yes";
    return child;
}

ViciResult<IkeSaInfo> readIkeSa(const std::string& name, const Section& section) {
    IkeSaInfo ike;
    ike.name = name;
    for (auto read :
         {readString(section, "uniqueid", ike.unique_id), readString(section, "state", ike.state),
          readString(section, "local-host", ike.local_host),
          readString(section, "remote-host", ike.remote_host)}) {
        if (!read) {
            return viciError(read.error().code, "IKE_SA '" + name + "': " + read.error().detail);
        }
    }
    const Entry* children = section.find("child-sas");
    if (!children) {
        return ike;
    }
    const Section* child_sas = std::get_if<Section>(&children->element);
    if (!child_sas) {
        return viciError(ViciErrc::InvalidValue, "IKE_SA '" + name + "': child-sas not a section");
    }
    for (const Entry& entry : child_sas->entries) {
        const Section* child = std::get_if<Section>(&entry.element);
        if (!child) {
            return viciError(ViciErrc::InvalidValue, "IKE_SA '" + name + "': child-sas entry '" +
                                                         entry.name + "' not a section");
        }
        auto info = readChildSa(entry.name, *child);
        if (!info) {
            return info.error();
        }
        ike.children.push_back(std::move(info).value());
    }
    return ike;
}

// Root entries of list-sa and the up/down events other than `up`.
ViciResult<void> readIkeSas(const Section& root, std::vector<IkeSaInfo>& out) {
    for (const Entry& entry : root.entries) {
        if (entry.name == "up") {
            continue;
        }
        const Section* section = std::get_if<Section>(&entry.element);
        if (!section) {
            return viciError(ViciErrc::InvalidValue, "'" + entry.name + "' is not an IKE_SA");
        }
        auto ike = readIkeSa(entry.name, *section);
        if (!ike) {
            return ike.error();
        }
        out.push_back(std::move(ike).value());
    }
    return {};
}

}  // namespace

ViciResult<Section> loadConnMessage(const TunnelConfig& config) {
    if (config.ike_version > 2) {
        return viciError(ViciErrc::InvalidRequest,
                         "IKE version " + std::to_string(config.ike_version));
    }
    Section root;
    Section& conn = root.addSection(config.name);
    conn.addValue("version", std::to_string(config.ike_version));
    addIfSet(conn, "local_addrs", config.local_addrs);
    addIfSet(conn, "remote_addrs", config.remote_addrs);
    addIfSet(conn, "proposals", config.proposals);
    addIfSet(conn, "dpd_delay", config.dpd_delay);
    addAuth(conn, "local", config.local);
    addAuth(conn, "remote", config.remote);
    if (!config.children.empty()) {
        Section& children = conn.addSection("children");
        for (const ChildConfig& child : config.children) {
            Section& section = children.addSection(child.name);
            addIfSet(section, "mode", child.mode);
            addIfSet(section, "local_ts", child.local_ts);
            addIfSet(section, "remote_ts", child.remote_ts);
            addIfSet(section, "esp_proposals", child.esp_proposals);
            addIfSet(section, "start_action", child.start_action);
            addIfSet(section, "dpd_action", child.dpd_action);
        }
    }
    return root;
}

ViciResult<Section> loadSharedMessage(const SharedSecret& secret) {
    if (secret.type.empty()) {
        return viciError(ViciErrc::InvalidRequest, "shared secret without type");
    }
    Section root;
    addIfSet(root, "id", secret.id);
    root.addValue("type", secret.type);
    root.addValue("data", secret.data);
    root.addList("owners", secret.owners);
    return root;
}

Packet versionRequest() {
    return Packet{PacketType::CmdRequest, std::string(command::kVersion), {}};
}

ViciResult<Packet> loadConnRequest(const TunnelConfig& config) {
    auto message = loadConnMessage(config);
    if (!message) {
        return message.error();
    }
    return request(command::kLoadConn, *message);
}

ViciResult<Packet> loadSharedRequest(const SharedSecret& secret) {
    auto message = loadSharedMessage(secret);
    if (!message) {
        return message.error();
    }
    return request(command::kLoadShared, *message);
}

ViciResult<Packet> unloadConnRequest(std::string_view name) {
    if (name.empty()) {
        return viciError(ViciErrc::InvalidRequest, "unload-conn needs a connection name");
    }
    Section root;
    root.addValue("name", std::string(name));
    return request(command::kUnloadConn, root);
}

ViciResult<Packet> initiateRequest(const InitiateRequest& initiate) {
    if (initiate.child.empty()) {
        return viciError(ViciErrc::InvalidRequest, "initiate needs a CHILD_SA name");
    }
    Section root;
    root.addValue("child", initiate.child);
    addIfSet(root, "ike", initiate.ike);
    addIfSet(root, "timeout", initiate.timeout_ms);
    addIfSet(root, "loglevel", initiate.loglevel);
    return request(command::kInitiate, root);
}

ViciResult<Packet> terminateRequest(const TerminateRequest& terminate) {
    if (terminate.child.empty() && terminate.ike.empty() && !terminate.child_id &&
        !terminate.ike_id) {
        return viciError(ViciErrc::InvalidRequest, "terminate needs a selector");
    }
    Section root;
    addIfSet(root, "child", terminate.child);
    addIfSet(root, "ike", terminate.ike);
    addIfSet(root, "child-id", terminate.child_id);
    addIfSet(root, "ike-id", terminate.ike_id);
    if (terminate.force) {
        root.addValue("force", "yes");
    }
    addIfSet(root, "timeout", terminate.timeout_ms);
    addIfSet(root, "loglevel", terminate.loglevel);
    return request(command::kTerminate, root);
}

ViciResult<Packet> listSasRequest(const ListSasRequest& list) {
    Section root;
    if (list.noblock) {
        root.addValue("noblock", "yes");
    }
    addIfSet(root, "ike", list.ike);
    addIfSet(root, "ike-id", list.ike_id);
    return request(command::kListSas, root);
}

ViciResult<Packet> registerEventRequest(std::string_view event) {
    if (!isValidName(event)) {
        return viciError(ViciErrc::InvalidName, "event '" + std::string(event) + "'");
    }
    return Packet{PacketType::EventRegister, std::string(event), {}};
}

ViciResult<Packet> unregisterEventRequest(std::string_view event) {
    if (!isValidName(event)) {
        return viciError(ViciErrc::InvalidName, "event '" + std::string(event) + "'");
    }
    return Packet{PacketType::EventUnregister, std::string(event), {}};
}

ViciResult<Section> readResponse(const Packet& packet) {
    switch (packet.type) {
        case PacketType::CmdResponse:
            return decodeMessage(packet.message);
        case PacketType::CmdUnknown:
            return viciError(ViciErrc::UnknownCommand);
        default:
            return viciError(ViciErrc::UnexpectedPacket, typeName(packet.type));
    }
}

ViciResult<void> readEventConfirm(const Packet& packet) {
    switch (packet.type) {
        case PacketType::EventConfirm:
            return {};
        case PacketType::EventUnknown:
            return viciError(ViciErrc::UnknownEvent);
        default:
            return viciError(ViciErrc::UnexpectedPacket, typeName(packet.type));
    }
}

ViciResult<EventMessage> readEvent(const Packet& packet) {
    if (packet.type != PacketType::Event) {
        return viciError(ViciErrc::UnexpectedPacket, typeName(packet.type));
    }
    auto message = decodeMessage(packet.message);
    if (!message) {
        return message.error();
    }
    return EventMessage{packet.name, std::move(message).value()};
}

ViciResult<CommandOutcome> readCommandOutcome(const Section& response) {
    std::string success;
    if (auto read = readRequiredString(response, "success", success); !read) {
        return read.error();
    }
    if (success != "yes" && success != "no") {
        return viciError(ViciErrc::InvalidValue, "success = '" + success + "'");
    }
    CommandOutcome outcome;
    outcome.success = success == "yes";
    if (auto read = readString(response, "errmsg", outcome.errmsg); !read) {
        return read.error();
    }
    return outcome;
}

ViciResult<VersionInfo> readVersion(const Section& response) {
    VersionInfo info;
    for (auto read : {readRequiredString(response, "daemon", info.daemon),
                      readRequiredString(response, "version", info.version),
                      readString(response, "sysname", info.sysname),
                      readString(response, "release", info.release),
                      readString(response, "machine", info.machine)}) {
        if (!read) {
            return read.error();
        }
    }
    return info;
}

ViciResult<std::vector<IkeSaInfo>> readListSa(const Section& event) {
    std::vector<IkeSaInfo> out;
    if (event.find("up")) {
        return viciError(ViciErrc::InvalidValue, "'up' in a list-sa event");
    }
    if (auto read = readIkeSas(event, out); !read) {
        return read.error();
    }
    return out;
}

ViciResult<UpDownEvent> readUpDown(const Section& event) {
    UpDownEvent updown;
    // Charon sends up=yes on up and leaves the key out on down; the README
    // documents "no" for down, so that reads as down too.
    if (const Entry* up = event.find("up")) {
        const Value* value = std::get_if<Value>(&up->element);
        if (!value || (*value != "yes" && *value != "no")) {
            return viciError(ViciErrc::InvalidValue, "'up' is not yes or no");
        }
        updown.up = *value == "yes";
    }
    if (auto read = readIkeSas(event, updown.ike_sas); !read) {
        return read.error();
    }
    return updown;
}

}  // namespace xtap::ipsec
