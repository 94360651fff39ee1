package org.mlcmanager.engine.criteria;

import static camundajar.impl.scala.jdk.CollectionConverters.ListHasAsScala;
import static camundajar.impl.scala.jdk.CollectionConverters.SeqHasAsJava;
import static org.camunda.feel.context.VariableProvider.CompositeVariableProvider;

import camundajar.impl.scala.collection.immutable.Map;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.camunda.bpm.dmn.feel.impl.FeelException;
import org.camunda.bpm.dmn.feel.impl.scala.ContextVariableWrapper;
import org.camunda.bpm.dmn.feel.impl.scala.ScalaFeelEngine;
import org.camunda.bpm.dmn.feel.impl.scala.function.FeelCustomFunctionProvider;
import org.camunda.bpm.engine.variable.context.VariableContext;
import org.camunda.bpm.engine.variable.value.TypedValue;
import org.camunda.feel.api.EvaluationFailure;
import org.camunda.feel.api.EvaluationFailureType;
import org.camunda.feel.api.EvaluationResult;
import org.camunda.feel.api.FeelEngineApi;
import org.camunda.feel.api.ParseResult;
import org.camunda.feel.context.CustomContext;
import org.camunda.feel.context.VariableProvider;
import org.camunda.feel.context.VariableProvider.StaticVariableProvider;

/**
 * Camunda's FEEL engine for DMN, made strict: an expression or input entry that cannot be evaluated
 * throws a {@link FeelException} naming it and the FEEL engine's own messages.
 *
 * <p>The FEEL engine Camunda 7.24 ships (feel-scala 1.19) evaluates leniently: a failure (an entry
 * such as {@code if <0 or >10 then true else false}, a string compared with a number) is suppressed
 * and the entry reads as null, so its rule simply does not match. For test criteria that turns a
 * broken criterion into a pass. {@link ScalaFeelEngine} uses feel-scala's {@code Either} API, which
 * drops the suppressed failures; this subclass evaluates through {@code evaluate}, which keeps them.
 *
 * <p>Suppressed failures that come from a missing value are not faults of the expression and stay
 * lenient: a variable, context entry or property that is not there (the metric was not given, and
 * whatever failed because of it) and a comparison with an input that is null. Names that were not
 * found go to the {@link MissingValues} of the evaluation in progress, when there is one.
 */
public class StrictFeelEngine extends ScalaFeelEngine {

  private static final String INPUT_VARIABLE_NAME = "inputVariableName";

  // the engine the superclass built (Operaton's ScalaFeelEngine holds it as feelEngineApi already)
  private final FeelEngineApi feel = new FeelEngineApi(feelEngine);

  public StrictFeelEngine(List<FeelCustomFunctionProvider> functionProviders) {
    super(functionProviders);
  }

  @Override
  @SuppressWarnings("unchecked")
  public <T> T evaluateSimpleExpression(String expression, VariableContext variableContext) {
    CustomContext context = context(new ContextVariableWrapper(variableContext));
    EvaluationResult result = evaluate(feel.parseExpression(expression), context, "expression", expression);
    checkSuppressed(result, "expression", expression, false);
    return (T) result.result();
  }

  @Override
  public boolean evaluateSimpleUnaryTests(String expression, String inputVariable, VariableContext variableContext) {
    StaticVariableProvider input = new StaticVariableProvider(new Map.Map1<>(INPUT_VARIABLE_NAME, inputVariable));
    CustomContext context = context(input, new ContextVariableWrapper(variableContext));
    EvaluationResult result = evaluate(feel.parseUnaryTests(expression), context, "input entry", expression);
    checkSuppressed(result, "input entry", expression, isNull(variableContext, inputVariable));
    return Boolean.TRUE.equals(result.result());
  }

  private EvaluationResult evaluate(ParseResult parsed, CustomContext context, String kind, String expression) {
    if (parsed.isFailure()) {
      throw failure(kind, expression, parsed.failure().message());
    }
    EvaluationResult result = feel.evaluate(parsed.parsedExpression(), context);
    if (result.isFailure()) {
      throw failure(kind, expression, result.failure().message());
    }
    return result;
  }

  private void checkSuppressed(EvaluationResult result, String kind, String expression, boolean nullInput) {
    List<String> faults = new ArrayList<>();
    boolean missing = false;
    for (EvaluationFailure suppressed : SeqHasAsJava(result.suppressedFailures()).asJava()) {
      EvaluationFailureType type = suppressed.failureType();
      if (type instanceof EvaluationFailureType.NO_VARIABLE_FOUND$
          || type instanceof EvaluationFailureType.NO_CONTEXT_ENTRY_FOUND$
          || type instanceof EvaluationFailureType.NO_PROPERTY_FOUND$) {
        MissingValues.report(suppressed.failureMessage());
        missing = true;
      } else if (!(nullInput && (type instanceof EvaluationFailureType.NOT_COMPARABLE$
          || type instanceof EvaluationFailureType.INVALID_TYPE$))) {
        faults.add(suppressed.failureMessage());
      }
    }
    // what fails only because a value is missing (null + 1) is a missing value, not a broken expression
    if (!faults.isEmpty() && !missing) {
      throw failure(kind, expression, String.join("; ", faults));
    }
  }

  private static FeelException failure(String kind, String expression, String message) {
    return new FeelException("FEEL " + kind + " '" + expression + "' cannot be evaluated: " + message);
  }

  private static boolean isNull(VariableContext variables, String name) {
    if (name == null || !variables.containsVariable(name)) {
      return true;
    }
    TypedValue value = variables.resolve(name);
    return value == null || value.getValue() == null;
  }

  private static CustomContext context(VariableProvider... providers) {
    List<VariableProvider> scala = Arrays.asList(providers);
    return new CustomContext() {
      @Override
      public VariableProvider variableProvider() {
        return new CompositeVariableProvider(ListHasAsScala(scala).asScala().toList());
      }
    };
  }
}
