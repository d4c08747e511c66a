pub mod openbao;
