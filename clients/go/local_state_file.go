package rollgate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// persist writes the state to LocalOptions.StateFile, when set, as a WatchRoutesResponse
// snapshot in proto JSON: written to a temporary file in the same directory and renamed over
// the old one, so that a crash leaves the old state or the new, never half of one. A failure
// is logged; routing goes on.
func (l *LocalRouter) persist(st *localState) {
	if l.opts.StateFile == "" {
		return
	}
	snap := &rollgatev1.WatchRoutesResponse{Revision: st.revision, Reset_: true, Routes: make([]*rollgatev1.RouteState, 0, len(st.rollouts))}
	for _, r := range st.rollouts {
		snap.Routes = append(snap.Routes, r.state)
	}
	slices.SortFunc(snap.Routes, func(a, b *rollgatev1.RouteState) int { return strings.Compare(a.GetRollout(), b.GetRollout()) })
	raw, err := protojson.MarshalOptions{Multiline: true}.Marshal(snap)
	if err == nil {
		err = writeFileAtomic(l.opts.StateFile, raw)
	}
	if err != nil {
		l.log.Error("rollgate: could not write the local routing state file", "file", l.opts.StateFile, "error", err.Error())
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadStateFile installs the state of LocalOptions.StateFile unless a state is held already
// (a snapshot won the race). A missing, unreadable or malformed file is logged and ignored.
func (l *LocalRouter) loadStateFile() {
	raw, err := os.ReadFile(l.opts.StateFile)
	if err != nil {
		if !os.IsNotExist(err) {
			l.log.Error("rollgate: could not read the local routing state file", "file", l.opts.StateFile, "error", err.Error())
		}
		return
	}
	var snap rollgatev1.WatchRoutesResponse
	if err := protojson.Unmarshal(raw, &snap); err != nil {
		l.log.Error("rollgate: local routing state file is not a WatchRoutesResponse: ignored", "file", l.opts.StateFile, "error", err.Error())
		return
	}
	st := &localState{revision: snap.GetRevision(), rollouts: make(map[string]*localRollout, len(snap.GetRoutes())), fromFile: true}
	for _, rs := range snap.GetRoutes() {
		r, err := compileRoute(rs)
		if err != nil {
			l.log.Error("rollgate: local routing state file holds a bad route: ignored", "file", l.opts.StateFile, "rollout", rs.GetRollout(), "error", err.Error())
			return
		}
		st.rollouts[rs.GetRollout()] = r
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if l.state.CompareAndSwap(nil, st) {
		l.log.Warn("rollgate: no snapshot from the server at start: routing from the state file", "file", l.opts.StateFile, "revision", st.revision, "rollouts", len(st.rollouts))
	}
}
