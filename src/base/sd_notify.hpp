// carrier base: systemd's readiness protocol (sd_notify(3)) without libsystemd: when
// $NOTIFY_SOCKET is set (Type=notify units), state lines such as "READY=1", "RELOADING=1",
// "STOPPING=1", "STATUS=..." are sent to it as one datagram. A path starting with '@' is in
// the abstract namespace. Does nothing when the variable is unset. Never fails loudly: the
// service manager's view is advisory.
#pragma once
#include <string_view>

namespace carrier {

// Returns true when the datagram was sent.
bool sd_notify(std::string_view state);

}  // namespace carrier
