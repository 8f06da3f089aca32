# Break-glass: an identity whose token carries the configured claim
# (config.break_glass.claim, true) passes a call that would need approval at
# once. The gateway still requires a justification, records the call as a
# "bypassed" request with its full audit trail and raises the loudest event.
# Delete this file to disable break-glass.
package approval

import data.config

break_glass_allowed if {
	input.identity.claims[config.break_glass.claim] == true
}
