package kube

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/aipress/aipress/internal/sitefw"
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

// A shard pod runs under the runtime's seccomp profile; its agent keeps
// only ShardCapabilities and cannot gain privileges; before it starts, the
// init container, with NET_ADMIN only, applies the site firewall for the
// range site users are created in, allowing the shard's database.
func TestShardPodHardening(t *testing.T) {
	set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s", SiteFirewallArgs: []string{"--allow", "10.8.0.0/14:3306"}}
	set.defaults()
	for _, tt := range []struct {
		spec ShardSpec
		db   string
	}{
		{ShardSpec{Name: "k8s-1", Capacity: 50}, "aipress-shard-k8s-1-db:3306"},
		{ShardSpec{Name: "k8s-2", Capacity: 50, ExternalMySQL: &ExternalMySQL{Host: "10.1.2.3:3306", Secret: "s"}}, "10.1.2.3:3306"},
	} {
		pod := shardStatefulSet(set, tt.spec, Owner{Name: "a", UID: "u"}).Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: pod security context %+v", tt.spec.Name, sc)
		}
		agent := pod.Containers[0]
		sc := agent.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			!slices.Equal(sc.Capabilities.Add, ShardCapabilities) {
			t.Errorf("%s: agent security context %+v", tt.spec.Name, sc)
		}
		if i := slices.Index(agent.Args, "--site-firewall"); i < 0 || agent.Args[i+1] != "off" {
			t.Errorf("%s: agent args %v: want --site-firewall off (the init container applies it)", tt.spec.Name, agent.Args)
		}
		if len(pod.InitContainers) != 1 {
			t.Fatalf("%s: init containers %v", tt.spec.Name, pod.InitContainers)
		}
		ic := pod.InitContainers[0]
		want := []string{"sitefw", "apply", "--uid-range", sitefw.DefaultSiteIDs.String(), "--deny-private", "--allow", tt.db, "--allow", "10.8.0.0/14:3306"}
		if ic.Image != set.Image || !slices.Equal(ic.Args, want) {
			t.Errorf("%s: init container %s %v, want %v", tt.spec.Name, ic.Image, ic.Args, want)
		}
		isc := ic.SecurityContext
		if isc == nil || isc.Capabilities == nil || !slices.Equal(isc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) ||
			!slices.Equal(isc.Capabilities.Drop, []corev1.Capability{"ALL"}) || isc.AllowPrivilegeEscalation == nil || *isc.AllowPrivilegeEscalation {
			t.Errorf("%s: init container security context %+v", tt.spec.Name, isc)
		}
	}
}
