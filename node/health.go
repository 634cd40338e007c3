package node

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/store/fault"
)

// health is what this node's stores say of their disks. A store that
// failed stays so until a restart; the node keeps serving reads (see the
// README's "Storage faults") and says so to the cluster and on /status.
type health struct {
	mu     sync.Mutex
	states map[string]fault.State // by store: "mailboxes", "mail"
	errs   map[string]error
	gossip *actor.PID // set once gossip runs
	// announcing serialises announcements, so the last one sent carries
	// the latest state.
	announcing sync.Mutex
}

// storageChanged is every store's OnFault: it must not block. A store
// is in rookery_storage_state from its open on (see storeOpened).
func (n *Node) storageChanged(store string) func(fault.State, error) {
	return func(st fault.State, err error) {
		h := &n.health
		h.mu.Lock()
		if h.states == nil {
			h.states, h.errs = map[string]fault.State{}, map[string]error{}
		}
		h.states[store], h.errs[store] = st, err
		pid := h.gossip
		h.mu.Unlock()
		n.metrics.StorageState.WithLabelValues(store).Set(float64(st))
		if pid != nil {
			go n.announce(pid)
		}
	}
}

// storage is the worst state of the node's stores ("" when all are ok,
// as gossip carries it) and the fault of a failed one.
func (n *Node) storage() (string, error) {
	h := &n.health
	h.mu.Lock()
	defer h.mu.Unlock()
	worst, cause := fault.OK, error(nil)
	for name, st := range h.states {
		if st > worst {
			worst, cause = st, h.errs[name]
		}
	}
	if worst == fault.OK {
		return "", nil
	}
	return worst.String(), cause
}

// gossipStarted lets storage changes reach the cluster, and announces one
// that came before.
func (n *Node) gossipStarted(pid *actor.PID) {
	n.health.mu.Lock()
	n.health.gossip = pid
	n.health.mu.Unlock()
	if s, _ := n.storage(); s != "" {
		go n.announce(pid)
	}
}

// announce gossips this node's metadata with its storage state.
func (n *Node) announce(pid *actor.PID) {
	n.health.announcing.Lock()
	defer n.health.announcing.Unlock()
	res, err := n.system.Root.RequestFuture(pid, &membership.UpdateMeta{Meta: n.meta()}, 5*time.Second).Result()
	if err == nil {
		if r, ok := res.(*membership.UpdateMetaReply); ok {
			err = r.Err
		}
	}
	if err != nil {
		n.log.Warn("announcing the storage state failed", "err", err)
	}
}

// storeOpened shows an open store as ok in rookery_storage_state, so an
// alert on it has a series before any fault.
func (n *Node) storeOpened(store string) {
	n.metrics.StorageState.WithLabelValues(store).Add(0)
}
