# Device actions: wiping or retiring a corporate device is routine and
# passes; a personal (BYOD) device, or one whose ownership is unknown, needs
# one approval from device-approvers. Deleting any device record needs it
# too. Ownership comes from data devices/data.json.
package approval.policies.devices

import data.approval.lib
import data.devices

_id := lib.segments[1]

_corporate if devices.ownership[_id] == "corporate"

_action := lib.segments[2]

decision := {
	"action": "allow",
	"policy": "devices",
	"reason": sprintf("device %s is corporate-owned: %s needs no approval", [_id, _action]),
} if {
	lib.under("devices")
	input.request.method == "POST"
	_action in {"wipe", "retire"}
	_corporate
} else := {
	"action": "require_approval",
	"policy": "devices",
	"resource": lib.object,
	"approvers": lib.with_after_hours([{"group": "device-approvers", "required": 1}]),
	"reason": "the device is not known to be corporate-owned: a second admin approves",
} if {
	lib.under("devices")
}
