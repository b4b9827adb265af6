//! The part of `google/protobuf/descriptor.proto` the model reads, as prost
//! messages: protoc writes a `FileDescriptorSet`, prost decodes it, and the
//! fields not declared here are skipped. Tags are descriptor.proto's.
//! (prost-types has no editions fields: `edition`, `features`.)

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    pub file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FileDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub package: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub dependency: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub message_type: Vec<DescriptorProto>,
    #[prost(message, repeated, tag = "5")]
    pub enum_type: Vec<EnumDescriptorProto>,
    #[prost(message, optional, tag = "8")]
    pub options: Option<FileOptions>,
    /// `proto2` (also when empty), `proto3` or `editions`.
    #[prost(string, optional, tag = "12")]
    pub syntax: Option<String>,
    /// An `Edition` value, for `editions` files.
    #[prost(int32, optional, tag = "14")]
    pub edition: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub field: Vec<FieldDescriptorProto>,
    #[prost(message, repeated, tag = "3")]
    pub nested_type: Vec<DescriptorProto>,
    #[prost(message, repeated, tag = "4")]
    pub enum_type: Vec<EnumDescriptorProto>,
    #[prost(message, optional, tag = "7")]
    pub options: Option<MessageOptions>,
    #[prost(message, repeated, tag = "8")]
    pub oneof_decl: Vec<OneofDescriptorProto>,
    #[prost(message, repeated, tag = "9")]
    pub reserved_range: Vec<ReservedRange>,
    #[prost(string, repeated, tag = "10")]
    pub reserved_name: Vec<String>,
}

/// `start` inclusive, `end` exclusive (for messages; enums: inclusive).
#[derive(Clone, PartialEq, Message)]
pub struct ReservedRange {
    #[prost(int32, optional, tag = "1")]
    pub start: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub end: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub number: Option<i32>,
    /// 1 optional, 2 required, 3 repeated.
    #[prost(int32, optional, tag = "4")]
    pub label: Option<i32>,
    /// A `FieldDescriptorProto.Type` value.
    #[prost(int32, optional, tag = "5")]
    pub r#type: Option<i32>,
    /// `.package.Message` for message, group and enum fields.
    #[prost(string, optional, tag = "6")]
    pub type_name: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub default_value: Option<String>,
    #[prost(message, optional, tag = "8")]
    pub options: Option<FieldOptions>,
    #[prost(int32, optional, tag = "9")]
    pub oneof_index: Option<i32>,
    /// A proto3 `optional` field, in its synthetic oneof.
    #[prost(bool, optional, tag = "17")]
    pub proto3_optional: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OneofDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnumDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub value: Vec<EnumValueDescriptorProto>,
    #[prost(message, optional, tag = "3")]
    pub options: Option<EnumOptions>,
    #[prost(message, repeated, tag = "4")]
    pub reserved_range: Vec<ReservedRange>,
    #[prost(string, repeated, tag = "5")]
    pub reserved_name: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnumValueDescriptorProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub number: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub options: Option<EnumValueOptions>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FileOptions {
    #[prost(message, optional, tag = "50")]
    pub features: Option<FeatureSet>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MessageOptions {
    #[prost(bool, optional, tag = "3")]
    pub deprecated: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub map_entry: Option<bool>,
    #[prost(message, optional, tag = "12")]
    pub features: Option<FeatureSet>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldOptions {
    #[prost(bool, optional, tag = "3")]
    pub deprecated: Option<bool>,
    #[prost(message, optional, tag = "21")]
    pub features: Option<FeatureSet>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnumOptions {
    #[prost(bool, optional, tag = "3")]
    pub deprecated: Option<bool>,
    #[prost(message, optional, tag = "7")]
    pub features: Option<FeatureSet>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnumValueOptions {
    #[prost(bool, optional, tag = "1")]
    pub deprecated: Option<bool>,
}

/// Editions features, as set explicitly on one element (resolution walks
/// field, messages, file, then the edition's defaults).
#[derive(Clone, PartialEq, Message)]
pub struct FeatureSet {
    /// 1 EXPLICIT, 2 IMPLICIT, 3 LEGACY_REQUIRED.
    #[prost(int32, optional, tag = "1")]
    pub field_presence: Option<i32>,
    /// 1 OPEN, 2 CLOSED.
    #[prost(int32, optional, tag = "2")]
    pub enum_type: Option<i32>,
    /// 1 LENGTH_PREFIXED, 2 DELIMITED (group encoding).
    #[prost(int32, optional, tag = "5")]
    pub message_encoding: Option<i32>,
}

pub const PRESENCE_EXPLICIT: i32 = 1;
pub const PRESENCE_IMPLICIT: i32 = 2;
pub const PRESENCE_LEGACY_REQUIRED: i32 = 3;
pub const ENCODING_DELIMITED: i32 = 2;

pub const LABEL_REQUIRED: i32 = 2;
pub const LABEL_REPEATED: i32 = 3;

/// `Edition` values of descriptor.proto.
pub const EDITION_2023: i32 = 1000;

/// `FieldDescriptorProto.Type`: the name a .proto file spells it with
/// (`None` for message, group and enum, which are named by `type_name`).
pub fn scalar_name(ty: i32) -> Option<&'static str> {
    Some(match ty {
        1 => "double",
        2 => "float",
        3 => "int64",
        4 => "uint64",
        5 => "int32",
        6 => "fixed64",
        7 => "fixed32",
        8 => "bool",
        9 => "string",
        12 => "bytes",
        13 => "uint32",
        15 => "sfixed32",
        16 => "sfixed64",
        17 => "sint32",
        18 => "sint64",
        _ => return None,
    })
}

pub const TYPE_GROUP: i32 = 10;
pub const TYPE_MESSAGE: i32 = 11;
pub const TYPE_ENUM: i32 = 14;
