package approvalgateway

import (
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// Sites on one store: each handler's site keeps its keys apart
// (store.SitePrefix), so two handlers share requests only when they share
// a store, a prefix and a site name. In one configuration that is a
// mistake (a request approved at one site could be completed at the
// other, and replayed to its backend): provisioning refuses it. Across
// configurations it is how a reload works (the new handler is provisioned
// before the old one is cleaned up), and several processes on one etcd
// cluster are one gateway by design.

// siteClaims holds, per key space (pooled store and key prefix), the
// configurations using it: each configuration's context, by its Done
// channel, with the number of its handlers on the space.
var siteClaims = struct {
	sync.Mutex
	m map[string]map[<-chan struct{}]int
}{m: map[string]map[<-chan struct{}]int{}}

// claimSite records that a handler of the configuration of ctx uses the
// key space prefix of the store storeKey for site, and returns how to give
// it up. A second handler of the same configuration on the same space is
// an error.
func claimSite(ctx caddy.Context, storeKey, prefix, site string) (func(), error) {
	space := storeKey + "\x00" + prefix
	config := ctx.Done()
	siteClaims.Lock()
	defer siteClaims.Unlock()
	users := siteClaims.m[space]
	if users[config] > 0 {
		return nil, fmt.Errorf("site %q: another approval_gateway handler of this configuration uses the same store and prefix (keys under %s) as the same site: "+
			"its requests could be completed through either; give each handler its own name with the site option", site, prefix)
	}
	if users == nil {
		users = map[<-chan struct{}]int{}
		siteClaims.m[space] = users
	}
	users[config]++
	var once sync.Once
	return func() {
		once.Do(func() {
			siteClaims.Lock()
			defer siteClaims.Unlock()
			if users[config]--; users[config] <= 0 {
				delete(users, config)
			}
			if len(users) == 0 {
				delete(siteClaims.m, space)
			}
		})
	}, nil
}
