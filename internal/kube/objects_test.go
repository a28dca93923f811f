package kube

import (
	"testing"
)

func TestValidShardName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"k8s-1", true},
		{"eu-west-42", true},
		{"", false},
		{"K8S-1", false},
		{"a_b", false},
		{"-a", false},
		{"a234567890123456789012345678901234567890", true},
		{"a2345678901234567890123456789012345678901", false},
	}
	for _, tt := range tests {
		if err := ValidShardName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidShardName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// The same spec gives the same objects and hashes (so a reconcile of an
// unchanged shard is a no-op), and any change gives another hash.
func TestObjectsHashes(t *testing.T) {
	set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s"}
	spec := ShardSpec{Name: "k8s-1", Capacity: 50}
	o := Owner{Name: "aipress-shard-k8s-1", UID: "u1"}
	hashes := func(set Settings, spec ShardSpec, o Owner) []string {
		objs, err := Objects(set, spec, o)
		if err != nil {
			t.Fatal(err)
		}
		var h []string
		for _, u := range objs {
			h = append(h, u.GetAnnotations()[AnnotationHash])
		}
		return h
	}
	a, b := hashes(set, spec, o), hashes(set, spec, o)
	if len(a) != 5 {
		t.Fatalf("%d objects with an own MariaDB, want 5", len(a))
	}
	for i := range a {
		if a[i] == "" || a[i] != b[i] {
			t.Errorf("object %d: hashes %q and %q", i, a[i], b[i])
		}
	}
	set2 := set
	set2.Image = "img2"
	if c := hashes(set2, spec, o); c[1] == a[1] {
		t.Error("a new image did not change the StatefulSet's hash")
	}
	spec.ExternalMySQL = &ExternalMySQL{Host: "db:3306", Secret: "s"}
	if c := hashes(set, spec, o); len(c) != 3 {
		t.Errorf("%d objects with an external MySQL, want 3 (no MariaDB Service and StatefulSet)", len(c))
	}
}
