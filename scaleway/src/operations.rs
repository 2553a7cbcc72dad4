//! Fixed operation names, shared by the client (metric and log labels) and the simulator (call
//! counts in `GET /_sim/state`, operation filters of the burst and latency faults).
//!
//! A label is always one of these constants, never an id, so metric cardinality stays bounded.

/// `POST /instance/v1/zones/{zone}/servers`
pub const CREATE_SERVER: &str = "create_server";
/// `GET /instance/v1/zones/{zone}/servers/{id}`
pub const GET_SERVER: &str = "get_server";
/// `GET /instance/v1/zones/{zone}/servers`
pub const LIST_SERVERS: &str = "list_servers";
/// `PATCH /instance/v1/zones/{zone}/servers/{id}`
pub const UPDATE_SERVER: &str = "update_server";
/// `DELETE /instance/v1/zones/{zone}/servers/{id}`
pub const DELETE_SERVER: &str = "delete_server";
/// `POST /instance/v1/zones/{zone}/servers/{id}/action`
pub const SERVER_ACTION: &str = "server_action";
/// `POST /instance/v1/zones/{zone}/servers/{id}/attach-volume`
pub const ATTACH_VOLUME: &str = "attach_volume";
/// `POST /instance/v1/zones/{zone}/servers/{id}/detach-volume`
pub const DETACH_VOLUME: &str = "detach_volume";
/// `PATCH /instance/v1/zones/{zone}/servers/{id}/user_data/{key}`
pub const SET_USER_DATA: &str = "set_user_data";
/// `GET /instance/v1/zones/{zone}/servers/{id}/user_data/{key}`
pub const GET_USER_DATA: &str = "get_user_data";
/// `DELETE /instance/v1/zones/{zone}/servers/{id}/user_data/{key}`
pub const DELETE_USER_DATA: &str = "delete_user_data";
/// `POST /block/v1alpha1/zones/{zone}/volumes`
pub const CREATE_VOLUME: &str = "create_volume";
/// `GET /block/v1alpha1/zones/{zone}/volumes/{id}`
pub const GET_VOLUME: &str = "get_volume";
/// `GET /block/v1alpha1/zones/{zone}/volumes`
pub const LIST_VOLUMES: &str = "list_volumes";
/// `DELETE /block/v1alpha1/zones/{zone}/volumes/{id}`
pub const DELETE_VOLUME: &str = "delete_volume";
/// `POST /instance/v1/zones/{zone}/ips`
pub const CREATE_IP: &str = "create_ip";
/// `GET /instance/v1/zones/{zone}/ips/{id}`
pub const GET_IP: &str = "get_ip";
/// `PATCH /instance/v1/zones/{zone}/ips/{id}` (attach / detach)
pub const UPDATE_IP: &str = "update_ip";
/// `DELETE /instance/v1/zones/{zone}/ips/{id}`
pub const DELETE_IP: &str = "delete_ip";
/// `GET /instance/v1/zones/{zone}/products/servers`
pub const LIST_SERVER_PRODUCTS: &str = "list_server_products";
/// `GET /instance/v1/zones/{zone}/products/servers/availability`
pub const SERVER_AVAILABILITY: &str = "server_availability";

/// Every operation name, for validation of fault filters.
pub const ALL: &[&str] = &[
    CREATE_SERVER,
    GET_SERVER,
    LIST_SERVERS,
    UPDATE_SERVER,
    DELETE_SERVER,
    SERVER_ACTION,
    ATTACH_VOLUME,
    DETACH_VOLUME,
    SET_USER_DATA,
    GET_USER_DATA,
    DELETE_USER_DATA,
    CREATE_VOLUME,
    GET_VOLUME,
    LIST_VOLUMES,
    DELETE_VOLUME,
    CREATE_IP,
    GET_IP,
    UPDATE_IP,
    DELETE_IP,
    LIST_SERVER_PRODUCTS,
    SERVER_AVAILABILITY,
];
