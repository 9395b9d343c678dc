//! gRPC server reflection (v1 and v1alpha), so grpcurl and `buf curl` work
//! without the proto files. It serves the schema's files, health's, its own
//! and `google/rpc/error_details.proto` with `status.proto` (so generic
//! tools decode the `google.rpc.ErrorInfo` and `BadRequest` every error
//! carries). A request it cannot answer (an unknown symbol or file) gets an
//! `ErrorResponse` on the stream, which stays open for the next request, as
//! the reflection protocol says; only a malformed stream ends it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The files reflection serves, and which file defines each symbol.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    files: HashMap<String, FileDescriptorProto>,
    symbols: HashMap<String, String>,
    services: Vec<String>,
}

/// Why a reflection request gets an `ErrorResponse`: its gRPC code and
/// message.
type Refusal = (tonic::Code, String);

impl Schema {
    /// The schema of these encoded file descriptor sets; a file in more
    /// than one is served as the first set has it.
    pub(crate) fn of(sets: &[&[u8]]) -> Result<Schema, prost::DecodeError> {
        let mut schema = Schema::default();
        for set in sets {
            let mut files = FileDescriptorSet::decode(*set)?.file;
            // Some sets name a file without its package's folder (tonic's
            // `error_details.proto`); clients ask for the path that the
            // import statements use (`google/rpc/error_details.proto`).
            let renamed: HashMap<String, String> = files
                .iter()
                .filter(|file| !file.name().contains('/') && !file.package().is_empty())
                .map(|file| {
                    let folder = file.package().replace('.', "/");
                    (file.name().to_string(), format!("{folder}/{}", file.name()))
                })
                .collect();
            for file in &mut files {
                if let Some(name) = renamed.get(file.name()) {
                    file.name = Some(name.clone());
                }
                for dependency in &mut file.dependency {
                    if let Some(name) = renamed.get(dependency.as_str()) {
                        *dependency = name.clone();
                    }
                }
            }
            for file in files {
                schema.add(file);
            }
        }
        schema.services.sort();
        Ok(schema)
    }

    fn add(&mut self, file: FileDescriptorProto) {
        let name = file.name().to_string();
        if self.files.contains_key(&name) {
            return;
        }
        let package = file.package().to_string();
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!("{package}.")
        };
        let mut symbols = Vec::new();
        for message in &file.message_type {
            message_symbols(&prefix, message, &mut symbols);
        }
        for enumeration in &file.enum_type {
            symbols.push(format!("{prefix}{}", enumeration.name()));
            // Enum values are scoped beside their enum.
            for value in &enumeration.value {
                symbols.push(format!("{prefix}{}", value.name()));
            }
        }
        for extension in &file.extension {
            symbols.push(format!("{prefix}{}", extension.name()));
        }
        for service in &file.service {
            let full = format!("{prefix}{}", service.name());
            for method in &service.method {
                symbols.push(format!("{full}.{}", method.name()));
            }
            self.services.push(full.clone());
            symbols.push(full);
        }
        for symbol in symbols {
            self.symbols.entry(symbol).or_insert_with(|| name.clone());
        }
        self.files.insert(name, file);
    }

    /// The file `name` and every file it depends on, encoded, the file
    /// first.
    fn file_with_dependencies(&self, name: &str) -> Result<Vec<Vec<u8>>, Refusal> {
        let mut order: Vec<&str> = Vec::new();
        let mut pending = vec![name];
        while let Some(next) = pending.pop() {
            if order.contains(&next) {
                continue;
            }
            let file = self.files.get(next).ok_or_else(|| {
                (
                    tonic::Code::NotFound,
                    format!("file {next:?} is not served by this server's reflection"),
                )
            })?;
            order.push(next);
            pending.extend(file.dependency.iter().map(String::as_str));
        }
        Ok(order
            .into_iter()
            .map(|name| self.files[name].encode_to_vec())
            .collect())
    }

    fn file_containing(&self, symbol: &str) -> Result<Vec<Vec<u8>>, Refusal> {
        let symbol = symbol.strip_prefix('.').unwrap_or(symbol);
        let file = self.symbols.get(symbol).ok_or_else(|| {
            (
                tonic::Code::NotFound,
                format!("symbol {symbol:?} is not known to this server (list the services to see what it serves)"),
            )
        })?;
        self.file_with_dependencies(file)
    }

    fn extension_numbers(&self, message: &str) -> Result<Vec<i32>, Refusal> {
        let message = message.strip_prefix('.').unwrap_or(message);
        if !self.symbols.contains_key(message) {
            return Err((
                tonic::Code::NotFound,
                format!("message {message:?} is not known to this server"),
            ));
        }
        let wanted = format!(".{message}");
        let mut numbers: Vec<i32> = self
            .files
            .values()
            .flat_map(|file| file.extension.iter())
            .filter(|extension| extension.extendee() == wanted)
            .map(|extension| extension.number())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    fn extension(&self, message: &str, number: i32) -> Result<Vec<Vec<u8>>, Refusal> {
        let wanted = format!(".{}", message.strip_prefix('.').unwrap_or(message));
        let file = self
            .files
            .values()
            .find(|file| {
                file.extension
                    .iter()
                    .any(|e| e.extendee() == wanted && e.number() == number)
            })
            .ok_or_else(|| {
                (
                    tonic::Code::NotFound,
                    format!("no extension {number} of {message:?} is known to this server"),
                )
            })?;
        self.file_with_dependencies(file.name())
    }
}

/// The symbols a message defines: itself, its fields, and what it nests.
fn message_symbols(prefix: &str, message: &DescriptorProto, symbols: &mut Vec<String>) {
    let full = format!("{prefix}{}", message.name());
    for field in &message.field {
        symbols.push(format!("{full}.{}", field.name()));
    }
    for oneof in &message.oneof_decl {
        symbols.push(format!("{full}.{}", oneof.name()));
    }
    let nested = format!("{full}.");
    for inner in &message.nested_type {
        message_symbols(&nested, inner, symbols);
    }
    for enumeration in &message.enum_type {
        symbols.push(format!("{nested}{}", enumeration.name()));
        for value in &enumeration.value {
            symbols.push(format!("{nested}{}", value.name()));
        }
    }
    for extension in &message.extension {
        symbols.push(format!("{nested}{}", extension.name()));
    }
    symbols.push(full);
}

/// The reflection services, over one schema.
#[derive(Debug, Clone)]
pub(crate) struct Reflection {
    schema: Arc<Schema>,
}

impl Reflection {
    /// Reflection over the schema of the API, health, reflection itself and
    /// the error details.
    pub(crate) fn new() -> Result<Reflection, prost::DecodeError> {
        let schema = Schema::of(&[
            release_manager::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_types::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])?;
        Ok(Reflection {
            schema: Arc::new(schema),
        })
    }
}

/// Implements one version of the reflection service; v1 and v1alpha have
/// the same messages in two packages.
macro_rules! reflection_version {
    ($version:ident) => {
        pub(crate) mod $version {
            //! One version of the reflection protocol over the shared schema.
            use super::*;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$version::server_reflection_server::{
                ServerReflection, ServerReflectionServer,
            };
            use tonic_reflection::pb::$version::{
                ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse,
                ListServiceResponse, ServerReflectionRequest, ServerReflectionResponse,
                ServiceResponse,
            };

            /// The tonic service of this version.
            pub(crate) fn service(reflection: Reflection) -> ServerReflectionServer<Reflection> {
                ServerReflectionServer::new(reflection)
            }

            fn answer(schema: &Schema, request: &MessageRequest) -> MessageResponse {
                let files = |found: Result<Vec<Vec<u8>>, Refusal>| {
                    found.map(|file_descriptor_proto| {
                        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                            file_descriptor_proto,
                        })
                    })
                };
                let result = match request {
                    MessageRequest::FileByFilename(name) => {
                        files(schema.file_with_dependencies(name))
                    }
                    MessageRequest::FileContainingSymbol(symbol) => {
                        files(schema.file_containing(symbol))
                    }
                    MessageRequest::FileContainingExtension(extension) => files(
                        schema.extension(&extension.containing_type, extension.extension_number),
                    ),
                    MessageRequest::AllExtensionNumbersOfType(message) => {
                        schema.extension_numbers(message).map(|extension_number| {
                            MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                                base_type_name: message.clone(),
                                extension_number,
                            })
                        })
                    }
                    MessageRequest::ListServices(_) => {
                        Ok(MessageResponse::ListServicesResponse(ListServiceResponse {
                            service: schema
                                .services
                                .iter()
                                .map(|name| ServiceResponse { name: name.clone() })
                                .collect(),
                        }))
                    }
                };
                result.unwrap_or_else(|(code, message)| {
                    MessageResponse::ErrorResponse(ErrorResponse {
                        error_code: code as i32,
                        error_message: message,
                    })
                })
            }

            type Answers =
                Pin<Box<dyn Stream<Item = Result<ServerReflectionResponse, Status>> + Send>>;

            #[tonic::async_trait]
            impl ServerReflection for Reflection {
                type ServerReflectionInfoStream = Answers;

                async fn server_reflection_info(
                    &self,
                    request: Request<Streaming<ServerReflectionRequest>>,
                ) -> Result<Response<Answers>, Status> {
                    let schema = self.schema.clone();
                    let answers = request.into_inner().map(move |request| {
                        let request = request?;
                        let message_response = match &request.message_request {
                            Some(asked) => answer(&schema, asked),
                            None => MessageResponse::ErrorResponse(ErrorResponse {
                                error_code: tonic::Code::InvalidArgument as i32,
                                error_message:
                                    "the request asks nothing (message_request is unset)".into(),
                            }),
                        };
                        Ok(ServerReflectionResponse {
                            valid_host: request.host.clone(),
                            original_request: Some(request),
                            message_response: Some(message_response),
                        })
                    });
                    Ok(Response::new(Box::pin(answers)))
                }
            }
        }
    };
}

reflection_version!(v1);
reflection_version!(v1alpha);

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Arc<Schema> {
        Reflection::new().expect("the sets decode").schema
    }

    fn file_names(encoded: &[Vec<u8>]) -> Vec<String> {
        encoded
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode(bytes.as_slice())
                    .expect("a file")
                    .name()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn error_details_are_served_with_their_dependencies() {
        let schema = schema();
        let files = schema
            .file_containing("google.rpc.ErrorInfo")
            .expect("served");
        let names = file_names(&files);
        assert_eq!(names[0], "google/rpc/error_details.proto");
        assert!(
            names.contains(&"google/protobuf/duration.proto".to_string()),
            "{names:?}"
        );
        schema.file_containing("google.rpc.Status").expect("served");
        schema
            .file_containing("google.rpc.BadRequest.FieldViolation")
            .expect("nested messages are served");
    }

    #[test]
    fn the_api_and_its_parts_are_symbols() {
        let schema = schema();
        for symbol in [
            "releasemanager.v1.ReleaseService",
            "releasemanager.v1.ReleaseService.Status",
            "releasemanager.v1.StatusRequest",
            "releasemanager.v1.StatusRequest.service",
            "releasemanager.v1.ErrorReason",
            "releasemanager.v1.BRANCH_RESTRICTED",
            "grpc.health.v1.Health",
            ".releasemanager.v1.Person",
        ] {
            let files = schema.file_containing(symbol).expect(symbol);
            assert!(!files.is_empty(), "{symbol}");
        }
        assert!(schema
            .services
            .contains(&"releasemanager.v1.PolicyService".to_string()));
        assert!(schema
            .services
            .contains(&"grpc.reflection.v1.ServerReflection".to_string()));
    }

    #[test]
    fn unknown_symbols_and_files_are_refused_by_name() {
        let schema = schema();
        let (code, message) = schema.file_containing("no.such.Thing").unwrap_err();
        assert_eq!(code, tonic::Code::NotFound);
        assert!(message.contains("no.such.Thing"), "{message}");
        assert!(schema.file_with_dependencies("nope.proto").is_err());
        assert!(schema.extension_numbers("no.such.Message").is_err());
        assert_eq!(
            schema
                .extension_numbers("releasemanager.v1.Person")
                .unwrap(),
            Vec::<i32>::new()
        );
    }
}
