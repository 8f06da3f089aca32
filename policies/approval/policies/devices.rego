# Device actions: wiping or retiring a corporate device is routine and
# passes; a personal (BYOD) device, or one whose ownership is unknown, needs
# one approval from device-approvers. Deleting any device record needs it
# too. Ownership comes from data devices/data.json.
package approval.policies.devices

import data.approval.lib
import data.devices

# Indexed: skipped without evaluation for calls that name no devices.
decision := _decision if "devices" in input.request.segments

# Where "devices" is in the path: first, mostly.
_at := 0 if lib.segments[0] == "devices"

else := lib.position("devices")

_id := lib.segments[_at + 1]

_corporate if devices.ownership[_id] == "corporate"

# The action is the last segment right after the device: /devices/7/wipe,
# not /devices/7/wipe/anything.
_action := lib.segments[_at + 2] if count(lib.segments) == _at + 3

_decision := {
	"action": "allow",
	"policy": "devices",
	"reason": sprintf("device %s is corporate-owned: %s needs no approval", [_id, _action]),
} if {
	input.request.method == "POST"
	_action in {"wipe", "retire"}
	_corporate
} else := {
	"action": "require_approval",
	"policy": "devices",
	"resource": lib.object,
	"approvers": lib.with_after_hours([{"group": "device-approvers", "required": 1}]),
	"reason": "the device is not known to be corporate-owned: a second admin approves",
}
