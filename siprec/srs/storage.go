package srs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"time"
)

// defaultFileMode is what recordings get unless Config.FileMode says
// otherwise: readable by the owner and the recordings group, by nobody else
// (calls are personal data).
const defaultFileMode fs.FileMode = 0o640

// storage creates the recording directories and files with the configured
// mode and group. Names never come from the caller: a session directory is
// the server's clock plus 64 random bits, a stream file is its m-line
// position, so no Call-ID, label or metadata can choose, predict or collide
// with a path.
type storage struct {
	fileMode fs.FileMode
	dirMode  fs.FileMode
	gid      int // -1: leave the group the kernel gives
}

// newStorage resolves cfg's FileMode and Group.
func newStorage(mode fs.FileMode, group string) (storage, error) {
	if mode == 0 {
		mode = defaultFileMode
	}
	if mode&^fs.ModePerm != 0 || mode&0o600 != 0o600 {
		return storage{}, fmt.Errorf("file mode %#o: want permission bits including owner read and write: %w", uint32(mode), ErrConfig)
	}
	st := storage{fileMode: mode, dirMode: dirModeOf(mode), gid: -1}
	if group == "" {
		return st, nil
	}
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		st.gid = n
		return st, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return storage{}, fmt.Errorf("recordings group %q: %w: %w", group, ErrConfig, err)
	}
	st.gid, _ = strconv.Atoi(g.Gid)
	return st, nil
}

// dirModeOf gives a directory search permission wherever the file mode
// gives read permission: 0640 files live in 0750 directories.
func dirModeOf(m fs.FileMode) fs.FileMode {
	return m | (m&0o444)>>2
}

// fix sets the exact mode (the process umask must not widen or narrow what
// the operator configured) and the group of a path just created.
func (st storage) fix(path string, mode fs.FileMode) error {
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if st.gid >= 0 {
		if err := os.Lchown(path, -1, st.gid); err != nil {
			return err
		}
	}
	return nil
}

// mkdirAll creates the recordings root if needed; an existing root is left
// as the operator made it.
func (st storage) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, st.dirMode); err != nil {
		return err
	}
	return st.fix(dir, st.dirMode)
}

// mkdir creates one directory; os.ErrExist passes through.
func (st storage) mkdir(path string) error {
	if err := os.Mkdir(path, st.dirMode); err != nil {
		return err
	}
	if err := st.fix(path, st.dirMode); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// create opens a new file exclusively for reading and writing.
func (st storage) create(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, st.fileMode)
	if err != nil {
		return nil, err
	}
	if err := st.fix(path, st.fileMode); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// writeFile replaces path's content through a temporary file and a rename,
// so a reader never sees half a document.
func (st storage) writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := st.create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// newSessionID is a session's name and directory name: sortable by start
// time, unique and unguessable by the random part.
func newSessionID(now time.Time) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:]), nil
}

// errTooManyCollisions is returned when random names keep colliding, which
// only a broken random source explains.
var errTooManyCollisions = errors.New("session id collisions")
