package controlplane

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
)

func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@recfork"
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sortConns(cs []ConnectionInfo) {
	sort.Slice(cs, func(i, j int) bool {
		if !cs[i].Created.Equal(cs[j].Created) {
			return cs[i].Created.Before(cs[j].Created)
		}
		return cs[i].ID < cs[j].ID
	})
}

func sortSessions(ss []SessionInfo) {
	sort.Slice(ss, func(i, j int) bool {
		if !ss[i].Started.Equal(ss[j].Started) {
			return ss[i].Started.Before(ss[j].Started)
		}
		return ss[i].ID < ss[j].ID
	})
}
