package srs

import (
	"encoding/binary"
	"fmt"
	"os"
)

// WAV layout written here: RIFF/WAVE with one "fmt " chunk (PCM, 16 bit,
// mono, 8000 Hz) and one "data" chunk, 44 header bytes in all.
const (
	wavHeaderSize = 44
	wavRate       = 8000
	wavBits       = 16
	wavChannels   = 1
	// headerEvery bounds how stale the header sizes get if the process dies:
	// they are refreshed whenever the data grows by this many samples.
	headerEvery = wavRate
)

// wavWriter writes 16-bit mono PCM samples at absolute sample positions;
// positions never written read back as silence because the file is extended
// (sparse where the file system allows) rather than padded by hand.
type wavWriter struct {
	f          *os.File
	samples    int64 // length in samples: highest position written + 1
	headerSeen int64 // samples value the on-disk header holds
	buf        []byte
}

// createWAV creates a WAV file with the default recording mode.
func createWAV(path string) (*wavWriter, error) {
	return storage{fileMode: defaultFileMode, dirMode: dirModeOf(defaultFileMode), gid: -1}.createWAV(path)
}

func (st storage) createWAV(path string) (*wavWriter, error) {
	f, err := st.create(path)
	if err != nil {
		return nil, fmt.Errorf("create wav: %w", err)
	}
	w := &wavWriter{f: f}
	if err := w.writeHeader(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// wavHeader returns the 44-byte header for a data chunk of n samples.
func wavHeader(n int64) []byte {
	data := uint32(n * wavBits / 8)
	h := make([]byte, wavHeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+data)
	copy(h[8:], "WAVE")
	copy(h[12:], "fmt ")
	binary.LittleEndian.PutUint32(h[16:], 16) // PCM fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)  // WAVE_FORMAT_PCM
	binary.LittleEndian.PutUint16(h[22:], wavChannels)
	binary.LittleEndian.PutUint32(h[24:], wavRate)
	binary.LittleEndian.PutUint32(h[28:], wavRate*wavChannels*wavBits/8) // byte rate
	binary.LittleEndian.PutUint16(h[32:], wavChannels*wavBits/8)         // block align
	binary.LittleEndian.PutUint16(h[34:], wavBits)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], data)
	return h
}

func (w *wavWriter) writeHeader() error {
	if _, err := w.f.WriteAt(wavHeader(w.samples), 0); err != nil {
		return fmt.Errorf("write wav header: %w", err)
	}
	w.headerSeen = w.samples
	return nil
}

// maxWAVSamples keeps the data chunk inside the 32-bit RIFF size field.
const maxWAVSamples = (1<<32 - 1 - 36) / 2

// writeAt stores samples starting at sample position pos (>= 0).
func (w *wavWriter) writeAt(pos int64, samples []int16) error {
	if pos < 0 || pos+int64(len(samples)) > maxWAVSamples {
		return fmt.Errorf("write wav at sample %d: %w", pos, ErrWAVRange)
	}
	if cap(w.buf) < 2*len(samples) {
		w.buf = make([]byte, 2*len(samples))
	}
	b := w.buf[:2*len(samples)]
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	if _, err := w.f.WriteAt(b, wavHeaderSize+2*pos); err != nil {
		return fmt.Errorf("write wav samples: %w", err)
	}
	if end := pos + int64(len(samples)); end > w.samples {
		w.samples = end
	}
	if w.samples-w.headerSeen >= headerEvery {
		return w.writeHeader()
	}
	return nil
}

// close writes the final sizes into the header and closes the file.
func (w *wavWriter) close() error {
	if w.f == nil {
		return nil
	}
	// A write past the last sample would have grown the file; trim to the
	// length the header will claim so the two always agree.
	err := w.f.Truncate(wavHeaderSize + 2*w.samples)
	if herr := w.writeHeader(); err == nil {
		err = herr
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close wav: %w", cerr)
	}
	w.f = nil
	return err
}
