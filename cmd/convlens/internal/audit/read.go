package audit

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// ReadRows calls fn with every row of a results file, in file order, a row
// group at a time (memory: one row group). A file being written is read as
// of its last complete append.
func ReadRows(path string, fn func(Row) error) error { return readAs(path, 64, fn) }

// idOnly reads the id column alone.
type idOnly struct {
	ID string `parquet:"id"`
}

// ReadIDs returns the ids a results file holds (none when it does not exist).
func ReadIDs(path string) ([]string, error) {
	var ids []string
	err := readAs(path, 1024, func(r idOnly) error { ids = append(ids, r.ID); return nil })
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ids, err
}

// readAs reads the file's rows as T (the columns T names), n at a time.
func readAs[T any](path string, n int, fn func(T) error) error {
	return readFile(path, func(f *parquet.File) error {
		buf := make([]T, n)
		for _, rg := range f.RowGroups() {
			r := parquet.NewGenericRowGroupReader[T](rg)
			for {
				clear(buf) // rows handed to fn keep their own slices
				k, err := r.Read(buf)
				for _, row := range buf[:k] {
					if ferr := fn(row); ferr != nil {
						r.Close()
						return ferr
					}
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					r.Close()
					return fmt.Errorf("reading %s: %w", path, err)
				}
			}
			r.Close()
		}
		return nil
	})
}

// readFile opens a results file at its last complete footer.
func readFile(path string, fn func(*parquet.File) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	_, end, err := lastFooter(f, fi.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pf, err := parquet.OpenFile(io.NewSectionReader(f, 0, end), end)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return fn(pf)
}
