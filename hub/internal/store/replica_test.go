package store

import (
	"maps"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

func TestMergeCluster(t *testing.T) {
	early, late := t0, t0.Add(time.Minute)
	tests := []struct {
		name        string
		stored      *Cluster
		in          Cluster
		want        Cluster
		wantChanged bool
		wantRevoked bool
	}{
		{
			name: "unknown cluster is added", in: Cluster{Name: "a", Labels: map[string]string{"env": "prod"}, CreatedAt: early},
			want: Cluster{Name: "a", Labels: map[string]string{"env": "prod"}, CreatedAt: early}, wantChanged: true,
		},
		{
			name: "unknown revoked cluster is added revoked", in: Cluster{Name: "a", CreatedAt: early, Revoked: true},
			want: Cluster{Name: "a", CreatedAt: early, Revoked: true}, wantChanged: true, wantRevoked: true,
		},
		{
			name:   "revocation sticks",
			stored: &Cluster{Name: "a", CreatedAt: early, Revoked: true, AgentVersion: "v1"},
			in:     Cluster{Name: "a", CreatedAt: early},
			want:   Cluster{Name: "a", CreatedAt: early, Revoked: true, AgentVersion: "v1"},
		},
		{
			name:        "revocation arrives",
			stored:      &Cluster{Name: "a", Labels: map[string]string{"env": "prod"}, CreatedAt: early, AgentVersion: "v1", LastSeen: late},
			in:          Cluster{Name: "a", Labels: map[string]string{"env": "prod"}, CreatedAt: early, Revoked: true},
			want:        Cluster{Name: "a", Labels: map[string]string{"env": "prod"}, CreatedAt: early, Revoked: true, AgentVersion: "v1", LastSeen: late},
			wantChanged: true, wantRevoked: true,
		},
		{
			name:   "earliest addition's labels win",
			stored: &Cluster{Name: "a", Labels: map[string]string{"env": "late"}, CreatedAt: late},
			in:     Cluster{Name: "a", Labels: map[string]string{"env": "early"}, CreatedAt: early},
			want:   Cluster{Name: "a", Labels: map[string]string{"env": "early"}, CreatedAt: early}, wantChanged: true,
		},
		{
			name:   "later addition loses",
			stored: &Cluster{Name: "a", Labels: map[string]string{"env": "early"}, CreatedAt: early},
			in:     Cluster{Name: "a", Labels: map[string]string{"env": "late"}, CreatedAt: late},
			want:   Cluster{Name: "a", Labels: map[string]string{"env": "early"}, CreatedAt: early},
		},
		{
			name:   "same creation to the millisecond is the same addition",
			stored: &Cluster{Name: "a", Labels: map[string]string{"env": "z"}, CreatedAt: early},
			in:     Cluster{Name: "a", Labels: map[string]string{"env": "z"}, CreatedAt: early.Truncate(time.Millisecond)},
			want:   Cluster{Name: "a", Labels: map[string]string{"env": "z"}, CreatedAt: early},
		},
		{
			name:   "agent version and last seen stay local",
			stored: &Cluster{Name: "a", CreatedAt: early, AgentVersion: "v1", LastSeen: late},
			in:     Cluster{Name: "a", CreatedAt: early, AgentVersion: "v2", LastSeen: late.Add(time.Hour)},
			want:   Cluster{Name: "a", CreatedAt: early, AgentVersion: "v1", LastSeen: late},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTestDB(t)
			if tt.stored != nil {
				if err := db.PutCluster(*tt.stored); err != nil {
					t.Fatal(err)
				}
			}
			changed, revoked, err := db.MergeCluster(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.wantChanged || revoked != tt.wantRevoked {
				t.Errorf("changed, revoked = %v, %v; want %v, %v", changed, revoked, tt.wantChanged, tt.wantRevoked)
			}
			got, ok, err := db.GetCluster("a")
			if err != nil || !ok {
				t.Fatalf("GetCluster: %v, %v", ok, err)
			}
			if got.Revoked != tt.want.Revoked || !got.CreatedAt.Equal(tt.want.CreatedAt) || !maps.Equal(got.Labels, tt.want.Labels) ||
				got.AgentVersion != tt.want.AgentVersion || !got.LastSeen.Equal(tt.want.LastSeen) {
				t.Errorf("cluster = %+v, want %+v", got, tt.want)
			}
			// Merging the same record again changes nothing.
			if changed, _, err := db.MergeCluster(tt.in); err != nil || changed {
				t.Errorf("second merge: changed %v, err %v", changed, err)
			}
		})
	}
}

// TestMergeClusterCommutes: two replicas that receive the same records in opposite orders
// end with the same registry.
func TestMergeClusterCommutes(t *testing.T) {
	recs := []Cluster{
		{Name: "a", Labels: map[string]string{"env": "x"}, CreatedAt: t0.Add(time.Second)},
		{Name: "a", Labels: map[string]string{"env": "y"}, CreatedAt: t0},
		{Name: "a", Labels: map[string]string{"env": "z"}, CreatedAt: t0},
		{Name: "a", CreatedAt: t0.Add(time.Second), Revoked: true},
	}
	var results []Cluster
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 3, 0, 1}} {
		db := newTestDB(t)
		for _, i := range order {
			if _, _, err := db.MergeCluster(recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		c, _, _ := db.GetCluster("a")
		results = append(results, c)
	}
	for _, c := range results[1:] {
		if !clusterEqual(c, results[0]) {
			t.Fatalf("orders disagree: %+v vs %+v", c, results[0])
		}
	}
	if !results[0].Revoked || results[0].Labels["env"] != "y" {
		t.Errorf("merged %+v, want revoked with env=y", results[0])
	}
}

func TestMergeToken(t *testing.T) {
	db := newTestDB(t)
	tok := JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "prod-1", ExpiresAt: t0.Add(time.Hour)}
	if changed, err := db.MergeToken(tok); err != nil || !changed {
		t.Fatalf("merge new token: changed %v, err %v", changed, err)
	}
	if changed, err := db.MergeToken(tok); err != nil || changed {
		t.Fatalf("merge same token: changed %v, err %v", changed, err)
	}
	// A use elsewhere is a use here: redeeming fails afterwards.
	used := tok
	used.UsedAt = t0.Add(time.Minute)
	if changed, err := db.MergeToken(used); err != nil || !changed {
		t.Fatalf("merge used token: changed %v, err %v", changed, err)
	}
	if _, _, err := db.RedeemToken(tok.ID, testSecret, nil, t0.Add(2*time.Minute)); err == nil {
		t.Fatal("token used on another replica was redeemed again")
	}
	// An unused copy arriving late does not clear the use; an earlier use wins.
	if changed, _ := db.MergeToken(tok); changed {
		t.Error("unused copy changed a used token")
	}
	earlier := tok
	earlier.UsedAt, earlier.UsedBy = t0.Add(30*time.Second), []byte("key-1")
	if changed, _ := db.MergeToken(earlier); !changed {
		t.Error("earlier use not taken")
	}
	// The key of the earliest use comes along: it may re-enrol on this replica too.
	if c, again, err := db.RedeemToken(tok.ID, testSecret, []byte("key-1"), t0.Add(time.Minute)); err != nil || c != "prod-1" || !again {
		t.Errorf("re-enrolment with the key that used the token elsewhere = %q, %v, %v", c, again, err)
	}
	// The secret hash of a known token is never replaced.
	forged := tok
	forged.SecretHash = jointoken.HashSecret("another-secret-another-secret-aa")
	if _, err := db.MergeToken(forged); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.GetToken(tok.ID)
	if err != nil || !ok || string(got.SecretHash) != string(tok.SecretHash) || !got.UsedAt.Equal(earlier.UsedAt) {
		t.Fatalf("token = %+v, %v, %v", got, ok, err)
	}
	if _, err := db.MergeToken(JoinToken{ID: "bbbbbbbbbbbb", Cluster: "prod-1"}); err == nil {
		t.Error("incomplete token merged")
	}

	list, err := db.ListTokens(t0)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListTokens before expiry = %v, %v", list, err)
	}
	if list, _ := db.ListTokens(t0.Add(time.Hour)); len(list) != 0 {
		t.Errorf("ListTokens lists expired tokens: %v", list)
	}
}
