package server

import (
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// MaxStatusPageBytes bounds a page of Status rows (StatusRequest.page_size > 0) well under the
// message limit, whatever the rows carry (drift diffs, messages).
const MaxStatusPageBytes = 2 << 20

// statusPage counts the rows of one page of Status. Rows come sorted by cluster, and a page
// ends only between two clusters, so that the next page can start after the last cluster.
type statusPage struct {
	size  int // rows at most; 0: no paging
	rows  int
	bytes int
	last  string // the cluster of the last row taken
}

func newStatusPage(size int32) *statusPage { return &statusPage{size: int(max(size, 0))} }

// full tells whether a row of cluster would start past the end of the page.
func (p *statusPage) full(cluster string) bool {
	return p.size > 0 && p.rows > 0 && cluster != p.last && (p.rows >= p.size || p.bytes >= MaxStatusPageBytes)
}

func (p *statusPage) add(it *flotillav1.AppClusterStatus) {
	p.rows++
	p.last = it.Cluster
	if p.size > 0 {
		p.bytes += proto.Size(it)
	}
}

// cutStatusPage ends a page of rows gathered from several replicas (sorted by cluster): before
// the first cluster past what any replica's own page reached (a replica whose page was cut at
// cluster C may hold more rows after C), and at the page's size.
func cutStatusPage(items []*flotillav1.AppClusterStatus, size int32, reached []string) ([]*flotillav1.AppClusterStatus, string) {
	limit := "" // the lowest cluster a replica's page stopped at
	for _, c := range reached {
		if c != "" && (limit == "" || c < limit) {
			limit = c
		}
	}
	page := newStatusPage(size)
	for i, it := range items {
		if limit != "" && it.Cluster > limit {
			return items[:i], limit
		}
		if page.full(it.Cluster) {
			return items[:i], page.last
		}
		page.add(it)
	}
	return items, limit
}

// pagedRowsReuse is how long the pages after the first of a paged Status read the fleet's rows
// as the first page did: one read of the whole fleet for all its pages, and pages that fit
// together.
const pagedRowsReuse = 10 * time.Second

// pagedRows keeps the fleet's rows read by the first page of a paged Status for the pages
// after it. The first page always reads them afresh; the last page lets them go.
type pagedRows struct {
	mu   sync.Mutex
	all  []fleet.Row
	read time.Time
}

// rows returns the rows for a page starting after cluster after ("" for the first page).
func (p *pagedRows) rows(after string, read func() []fleet.Row) []fleet.Row {
	p.mu.Lock()
	defer p.mu.Unlock()
	if after == "" || p.all == nil || time.Since(p.read) > pagedRowsReuse {
		p.all, p.read = read(), time.Now()
	}
	return p.all
}

// done lets the rows go once a last page was served (another reader's next page reads them
// again).
func (p *pagedRows) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = nil
}
