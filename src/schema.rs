//! Diesel table definitions, written by hand so that they hold for both backends.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        username_key -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        created_at -> Timestamp,
        security_version -> BigInt,
        not_before -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        refreshed_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        refresh_jti -> Nullable<Text>,
        previous_refresh_jti -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        user_id -> Nullable<BigInt>,
        revoked_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    revocations (id) {
        id -> BigInt,
        kind -> Text,
        subject -> Text,
        user_id -> BigInt,
        revoked_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, revoked_tokens, revocations);

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamp,
        action -> Text,
        outcome -> Text,
        actor_id -> Nullable<BigInt>,
        target_id -> Nullable<BigInt>,
        session_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        details -> Text,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        state -> Text,
        public_jwk -> Text,
        private_key -> Text,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    stores (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    items (id) {
        id -> BigInt,
        name -> Text,
        price_cents -> BigInt,
        store_id -> BigInt,
    }
}

diesel::table! {
    tags (id) {
        id -> BigInt,
        name -> Text,
        store_id -> BigInt,
    }
}

diesel::table! {
    items_tags (item_id, tag_id) {
        item_id -> BigInt,
        tag_id -> BigInt,
    }
}

diesel::joinable!(items -> stores (store_id));
diesel::joinable!(tags -> stores (store_id));
diesel::joinable!(items_tags -> items (item_id));
diesel::joinable!(items_tags -> tags (tag_id));
diesel::allow_tables_to_appear_in_same_query!(stores, items, tags, items_tags);
