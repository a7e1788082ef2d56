package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/convlens/convlens/internal/atomicfile"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// An Appender adds row groups to a Parquet results file, one per Append,
// so that the file is a valid Parquet file holding every row appended so
// far at every moment but during an Append's single write.
//
// A Parquet file is "PAR1", its row groups, its footer (the metadata that
// locates every row group), the footer's length and "PAR1" again; readers
// start from the end. Append writes the new row group after the last
// footer, then a new footer that lists all the row groups, in one write,
// and syncs it. The old footer stays in the file as unreferenced bytes,
// which Parquet readers never look at (they follow the footer's offsets),
// so that a crash in the middle of an Append leaves the previous footer
// intact: [OpenAppender] finds the last complete footer, cuts off what
// follows it, and goes on from there. Nothing is lost but the rows of the
// interrupted Append, and they are not in the file, so a resumed run
// explains them again.
//
// Unreferenced footers grow with the number of row groups (each footer
// lists them all), so once they take more than half the file's bytes, and
// at Close, the file is rewritten compactly (row groups copied as they are,
// one footer) beside itself and renamed over it (package atomicfile), so
// that readers again see one whole file or the other.
type Appender struct {
	f        *os.File
	path     string
	meta     format.FileMetaData
	end      int64 // bytes of the valid file
	live     int64 // bytes of row groups (the rest: magics, footers)
	identity Identity
}

// File metadata keys: what the file was made with.
const (
	keyModel   = "convlens.audit.model_sha256"
	keyMethod  = "convlens.audit.method"
	keyLayer   = "convlens.audit.layer"
	keyVersion = "convlens.audit.version"
	keyMap     = "convlens.audit.map"
)

const magic = "PAR1"

// mapNote describes the map column in the file's metadata.
const mapNote = "map: the method's raw signed map at the layer's resolution (map_height x map_width, row-major), before ReLU and scaling"

// writerOptions are the options of every row group's encoding.
func writerOptions() []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
		parquet.CreatedBy("convlens", Version(), ""),
	}
}

// encodeRows encodes rows as a whole Parquet file in memory (an empty one
// for no rows) and returns it with its decoded footer and the footer's offset.
func encodeRows(rows []Row) ([]byte, *format.FileMetaData, int64, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[Row](&buf, writerOptions()...)
	if len(rows) > 0 {
		if _, err := w.Write(rows); err != nil {
			return nil, nil, 0, fmt.Errorf("encoding rows: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, nil, 0, fmt.Errorf("encoding rows: %w", err)
	}
	data := buf.Bytes()
	md, start, err := decodeFooter(data, int64(len(data)))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("encoding rows: %w", err)
	}
	if len(md.RowGroups) > 1 {
		return nil, nil, 0, fmt.Errorf("encoding rows: %d row groups, want one", len(md.RowGroups))
	}
	return data, md, start, nil
}

// decodeFooter decodes the footer of a Parquet file whose first end bytes
// are data, and returns it with the offset where it starts.
func decodeFooter(data []byte, end int64) (*format.FileMetaData, int64, error) {
	if end < 12 || string(data[end-4:end]) != magic {
		return nil, 0, errors.New("no Parquet footer at the end")
	}
	n := int64(binary.LittleEndian.Uint32(data[end-8 : end-4]))
	start := end - 8 - n
	if n <= 0 || start < 4 {
		return nil, 0, errors.New("Parquet footer length out of range")
	}
	md := new(format.FileMetaData)
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), data[start:end-8], md); err != nil {
		return nil, 0, fmt.Errorf("decoding the Parquet footer: %w", err)
	}
	return md, start, nil
}

// OpenAppender opens the results file at path to append to it, creating
// it (with no rows) when it does not exist or is empty. An existing file
// must hold results of the same model, method and layer (see
// [CheckIdentity]) and of this schema. When its end is not a complete
// footer, because a run stopped in the middle of an append, the file is
// cut back to its last complete footer.
func OpenAppender(path string, id Identity) (*Appender, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("opening results: %w", err)
	}
	a := &Appender{f: f, path: path, identity: id}
	if err := lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	removeStaleCopies(path)
	if err := a.open(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

func (a *Appender) open() error {
	_, tmpl, _, err := encodeRows(nil)
	if err != nil {
		return err
	}
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		a.meta = *tmpl
		a.meta.KeyValueMetadata = []format.KeyValue{
			{Key: keyModel, Value: a.identity.ModelSHA256},
			{Key: keyMethod, Value: a.identity.Method},
			{Key: keyLayer, Value: a.identity.Layer},
			{Key: keyVersion, Value: Version()},
			{Key: keyMap, Value: mapNote},
		}
		if _, err := a.f.WriteAt([]byte(magic), 0); err != nil {
			return err
		}
		a.end = 4
		return a.writeFooter(nil)
	}
	md, end, err := lastFooter(a.f, fi.Size())
	if err != nil {
		return err
	}
	if !sameSchema(md.Schema, tmpl.Schema) {
		return errors.New("it is a Parquet file but not one convlens audit wrote (its columns differ); give another --out")
	}
	if err := CheckIdentity(identityOf(md), a.identity); err != nil {
		return err
	}
	if end < fi.Size() {
		if err := a.f.Truncate(end); err != nil {
			return fmt.Errorf("cutting an interrupted append: %w", err)
		}
	}
	a.meta, a.end = *md, end
	for _, rg := range md.RowGroups {
		lo, hi := rowGroupSpan(&rg)
		a.live += hi - lo
	}
	return nil
}

// removeStaleCopies removes what a run killed while compacting left: the
// temporary copies atomicfile names .NAME.tmp-RANDOM. The caller holds the
// lock, so no run is writing one.
func removeStaleCopies(path string) {
	target := atomicfile.Target(path)
	dir, name := filepath.Split(target)
	stale, _ := filepath.Glob(filepath.Join(dir, "."+name+".tmp-*"))
	for _, s := range stale {
		os.Remove(s)
	}
}

// identityOf reads what a file was made with from its metadata.
func identityOf(md *format.FileMetaData) Identity {
	var id Identity
	for _, kv := range md.KeyValueMetadata {
		switch kv.Key {
		case keyModel:
			id.ModelSHA256 = kv.Value
		case keyMethod:
			id.Method = kv.Value
		case keyLayer:
			id.Layer = kv.Value
		}
	}
	return id
}

// sameSchema compares two schemas by their encoding.
func sameSchema(a, b []format.SchemaElement) bool {
	ea, err1 := thrift.Marshal(new(thrift.CompactProtocol), format.FileMetaData{Schema: a})
	eb, err2 := thrift.Marshal(new(thrift.CompactProtocol), format.FileMetaData{Schema: b})
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// lastFooter finds the last complete footer of the file of the given size:
// the one at its end, or after an interrupted append the last one before.
// It returns the footer and the end of the valid file.
func lastFooter(f *os.File, size int64) (*format.FileMetaData, int64, error) {
	head := make([]byte, 4)
	if _, err := f.ReadAt(head, 0); err != nil || string(head) != magic {
		return nil, 0, errors.New("it is not a Parquet file; give another --out")
	}
	// Read backwards in windows; a footer never spans more than the
	// window's overlap, so every candidate end is tried once.
	const window = 4 << 20
	var firstErr error
	for hi := size; hi > 4; {
		lo := max(hi-window, 0)
		buf := make([]byte, hi-lo)
		if _, err := f.ReadAt(buf, lo); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		for i := len(buf) - 4; i >= 0; i-- {
			if string(buf[i:i+4]) != magic {
				continue
			}
			end := lo + int64(i) + 4
			md, err := footerAt(f, end)
			if err == nil {
				return md, end, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		if lo == 0 {
			break
		}
		hi = lo + 3 // overlap so that a magic across the boundary is seen
	}
	if firstErr == nil {
		firstErr = errors.New("no footer")
	}
	return nil, 0, fmt.Errorf("no complete Parquet footer in it (%v); give another --out", firstErr)
}

// footerAt decodes the footer of the file that ends at end and checks that
// every row group it lists lies before it.
func footerAt(f *os.File, end int64) (*format.FileMetaData, error) {
	if end < 12 {
		return nil, errors.New("too short")
	}
	var tail [8]byte
	if _, err := f.ReadAt(tail[:], end-8); err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	start := end - 8 - n
	if n <= 0 || start < 4 {
		return nil, errors.New("footer length out of range")
	}
	buf := make([]byte, end)
	if _, err := f.ReadAt(buf[start:], start); err != nil {
		return nil, err
	}
	md, _, err := decodeFooter(buf, end)
	if err != nil {
		return nil, err
	}
	var rows int64
	for _, rg := range md.RowGroups {
		lo, hi := rowGroupSpan(&rg)
		if lo < 4 || hi > start || len(rg.Columns) != len(md.RowGroups[0].Columns) {
			return nil, errors.New("footer lists data outside the file")
		}
		rows += rg.NumRows
	}
	if rows != md.NumRows {
		return nil, errors.New("footer's row count disagrees with its row groups")
	}
	return md, nil
}

// rowGroupSpan is the byte range a row group's pages and page indexes take.
func rowGroupSpan(rg *format.RowGroup) (lo, hi int64) {
	lo, hi = -1, -1
	add := func(off, n int64) {
		if off <= 0 || n <= 0 {
			return
		}
		if lo < 0 || off < lo {
			lo = off
		}
		hi = max(hi, off+n)
	}
	for _, c := range rg.Columns {
		m := c.MetaData
		first := m.DataPageOffset
		if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < first {
			first = m.DictionaryPageOffset
		}
		add(first, m.TotalCompressedSize)
		add(m.BloomFilterOffset, int64(m.BloomFilterLength))
		add(c.ColumnIndexOffset, int64(c.ColumnIndexLength))
		add(c.OffsetIndexOffset, int64(c.OffsetIndexLength))
	}
	return lo, hi
}

// shift moves every offset of a row group by delta bytes.
func shift(rg *format.RowGroup, delta int64) {
	move := func(off *int64) {
		if *off > 0 {
			*off += delta
		}
	}
	move(&rg.FileOffset)
	for i := range rg.Columns {
		c := &rg.Columns[i]
		move(&c.FileOffset)
		move(&c.MetaData.DataPageOffset)
		move(&c.MetaData.DictionaryPageOffset)
		move(&c.MetaData.IndexPageOffset)
		move(&c.MetaData.BloomFilterOffset)
		move(&c.ColumnIndexOffset)
		move(&c.OffsetIndexOffset)
	}
}

// Rows is how many rows the file holds.
func (a *Appender) Rows() int64 { return a.meta.NumRows }

// Append writes rows as one new row group, and the footer after it, and
// syncs the file.
func (a *Appender) Append(rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	if len(a.meta.RowGroups) >= 1<<15-1 {
		return errors.New("the results file has the most row groups Parquet numbers")
	}
	data, md, start, err := encodeRows(rows)
	if err != nil {
		return err
	}
	// Keep the pages, leave out the page index (column and offset
	// indexes, optional in Parquet): readers such as parquet-go's expect
	// it in one section for the whole file, after every row group.
	rg := md.RowGroups[0]
	for i := range rg.Columns {
		c := &rg.Columns[i]
		c.ColumnIndexOffset, c.ColumnIndexLength, c.OffsetIndexOffset, c.OffsetIndexLength = 0, 0, 0, 0
	}
	lo, hi := rowGroupSpan(&rg)
	if lo != 4 || hi > start {
		return fmt.Errorf("encoding rows: row group at bytes %d-%d of %d", lo, hi, start)
	}
	block := data[lo:hi]
	shift(&rg, a.end-lo)
	rg.Ordinal = int16(len(a.meta.RowGroups))
	if err := a.writeFooter(block, rg); err != nil {
		return err
	}
	a.live += int64(len(block))
	if a.end-a.live > a.live/2+1<<20 {
		return a.compact()
	}
	return nil
}

// writeFooter writes block at the end of the valid file, then the footer
// with the row groups rgs added, in one write, and syncs.
func (a *Appender) writeFooter(block []byte, rgs ...format.RowGroup) error {
	meta := a.meta
	meta.RowGroups = append(meta.RowGroups[:len(meta.RowGroups):len(meta.RowGroups)], rgs...)
	for _, rg := range rgs {
		meta.NumRows += rg.NumRows
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &meta)
	if err != nil {
		return fmt.Errorf("encoding the footer: %w", err)
	}
	out := make([]byte, 0, len(block)+len(footer)+8)
	out = append(out, block...)
	out = append(out, footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	out = append(out, magic...)
	if _, err := a.f.WriteAt(out, a.end); err != nil {
		return fmt.Errorf("appending to %s: %w", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", a.path, err)
	}
	a.meta, a.end = meta, a.end+int64(len(out))
	return nil
}

// compact rewrites the file with its row groups and one footer, beside it,
// and renames it over it.
func (a *Appender) compact() error {
	meta := a.meta
	meta.RowGroups = make([]format.RowGroup, len(a.meta.RowGroups))
	err := atomicfile.WriteFile(a.path, func(w io.Writer) error {
		if _, err := io.WriteString(w, magic); err != nil {
			return err
		}
		pos := int64(4)
		for i, rg := range a.meta.RowGroups {
			lo, hi := rowGroupSpan(&rg)
			if _, err := io.Copy(w, io.NewSectionReader(a.f, lo, hi-lo)); err != nil {
				return err
			}
			rg.Columns = append([]format.ColumnChunk(nil), rg.Columns...)
			shift(&rg, pos-lo)
			meta.RowGroups[i] = rg
			pos += hi - lo
		}
		footer, err := thrift.Marshal(new(thrift.CompactProtocol), &meta)
		if err != nil {
			return err
		}
		footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)-0))
		_, err = w.Write(append(footer, magic...))
		return err
	})
	if err != nil {
		return fmt.Errorf("compacting %s: %w", a.path, err)
	}
	f, err := os.OpenFile(a.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("reopening %s: %w", a.path, err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return fmt.Errorf("reopening %s: %w", a.path, err)
	}
	a.f.Close()
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	a.f, a.meta, a.end = f, meta, fi.Size()
	return nil
}

// Close compacts the file when it holds unreferenced footers, and closes it.
func (a *Appender) Close() error {
	if a.f == nil {
		return nil
	}
	var err error
	if a.end > a.live+int64(4+8+footerSize(&a.meta)) {
		err = a.compact()
	}
	err = errors.Join(err, a.f.Close())
	a.f = nil
	return err
}

func footerSize(md *format.FileMetaData) int {
	b, _ := thrift.Marshal(new(thrift.CompactProtocol), md)
	return len(b)
}
