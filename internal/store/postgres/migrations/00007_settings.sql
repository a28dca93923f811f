-- +goose Up
-- settings: values of the control plane's own state every replica must see
-- alike (store.Setting), written with compare-and-set on version: the mesh
-- CA's rotation state (package mtls).
CREATE TABLE settings (
    key     text COLLATE "C" PRIMARY KEY,
    value   bytea NOT NULL,
    version bigint NOT NULL
);

-- +goose Down
DROP TABLE settings;
