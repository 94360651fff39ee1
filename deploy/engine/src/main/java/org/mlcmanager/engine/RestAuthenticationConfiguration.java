package org.mlcmanager.engine;

import jakarta.servlet.Filter;
import org.camunda.bpm.engine.rest.security.auth.ProcessEngineAuthenticationFilter;
import org.camunda.bpm.engine.rest.security.auth.impl.HttpBasicAuthenticationProvider;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * HTTP basic authentication on {@code /engine-rest}, on when {@code mlc.rest-auth} is true
 * (MLC_ENGINE_REST_AUTH). Users are the engine's own identity service users, so the admin user
 * configured for Cockpit is also the REST user of the workers and of Camunda Modeler.
 */
@Configuration
@ConditionalOnProperty(prefix = "mlc", name = "rest-auth", havingValue = "true")
public class RestAuthenticationConfiguration {

  @Bean
  public FilterRegistrationBean<Filter> engineRestAuthentication() {
    FilterRegistrationBean<Filter> registration =
        new FilterRegistrationBean<>(new ProcessEngineAuthenticationFilter());
    registration.setName("engine-rest-basic-authentication");
    registration.addInitParameter("authentication-provider", HttpBasicAuthenticationProvider.class.getName());
    registration.addUrlPatterns("/engine-rest/*");
    return registration;
  }
}
